"""Export path: OpenVINO export config → patcher → trace → stateful IR → output folder."""
