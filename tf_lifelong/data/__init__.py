"""The data layer: sources (datasets as uint8 arrays), transforms, and the lifelong stream.

- `sources`: `load_source(name, data_dir, download)` -> `SourceData` (train and
  test `Split`s), `DataError` for every missing or malformed input. It reads
  files with `formats` and TFDS with `tfds_source`; the types are in `splits`.
- `transforms`: resize, grey->RGB and rotation, applied once to whole arrays.
- `streams`: `build_stream(config)` -> `Stream` of `Interval`s over
  `Distribution`s, and `as_dataset(split, ...)` -> tf.data pipeline.

Importing `sources` or `transforms` does not import TensorFlow; `streams` does.
"""
