"""Video data: the TFRecord record contract, video decoding, pure sampling ops, tf.data input.

* :mod:`model.data.schema` owns the record keys, serialisation, parsing and the label map.
* :mod:`model.data.video_io` decodes video files with PyAV and encodes JPEG frames.
* :mod:`model.data.video_ops` holds pure temporal-sampling, decoding, cropping and resizing
  functions, including the accelerator's half of training augmentation.
* :mod:`model.data.input` builds the ``tf.data`` pipelines for training and evaluation.

Importing this package is cheap; TensorFlow is only imported by the modules that need it.
"""

from __future__ import annotations
