"""Accuracy evaluation: perplexity and top-1 agreement of OpenVINO IRs against HF float32."""
