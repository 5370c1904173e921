"""Weight compression for Qwen3.5 IRs: the default policy, calibration text and the INT8 pass.

``policy`` says what each tensor becomes, ``calibration`` turns a text file (or the built-in
corpus) into NNCF calibration samples, ``mixed_precision`` runs the INT8 pass NNCF cannot express
in one call, and ``hooks`` plugs all of it into optimum-intel's CLI and Python entry points.
"""
