"""Decision thresholds at target operating points, and score calibration, from the calib split."""
