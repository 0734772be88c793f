"""The synthetic CESM phantom (`vdes-tune synth`): `dataset` writes it in exactly the CDD-CESM layout (or as
DICOM) with its ground truth, `draw` draws the breasts and lesions, `signal` decides how each lesion's
pathology shows in LE and DES (docs/phantom.md)."""
