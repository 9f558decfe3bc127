"""The people: the encrypted gallery, enrolment, search, matching and open-set calibration."""
