"""Functions over any cell: stacking, layers (uni- and bidirectional), dropout and
zoneout, and a learned initial carry."""
