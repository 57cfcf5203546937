"""The learners: CIPHER (edits), C3PO (verbal feedback), FSPO (labeled pairs)."""
