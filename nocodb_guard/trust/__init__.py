"""What lets an admin trust the verdicts: the audit trail, explanations, calibration."""
