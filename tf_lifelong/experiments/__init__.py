"""The paper's experiments (method.md section 7): presets, runs over seeds and
variants, end-of-run extras and the report (`bin/experiment`)."""
