"""Tests of tf_lifelong.data.transforms: rotation, resizing, grey->RGB."""

import numpy as np
import pytest
from PIL import Image

from tf_lifelong.data import transforms


def _random(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _blob(size=28, sigma=4.0):
  """A centred Gaussian blob [1, size, size, 1]: unchanged by any rotation."""
  c = (size - 1) / 2
  y, x = np.mgrid[:size, :size]
  blob = 255 * np.exp(-((y - c) ** 2 + (x - c) ** 2) / (2 * sigma**2))
  return np.rint(blob).astype(np.uint8)[None, ..., None]


@pytest.mark.parametrize("degrees", [0, 360, -720])
def test_rotate_by_whole_turns_is_identity(degrees):
  images = _random((7, 28, 28, 1))
  out = transforms.rotate(images, degrees)
  np.testing.assert_array_equal(out, images)
  assert out is not images


@pytest.mark.parametrize("k,degrees", [(1, 90), (2, 180), (3, 270), (3, -90)])
def test_rotate_quarter_turns_match_rot90(k, degrees):
  images = _random((5, 28, 28, 3))
  expected = np.rot90(images, k, axes=(1, 2))  # counter-clockwise as displayed
  np.testing.assert_array_equal(transforms.rotate(images, degrees), expected)


def test_rotate_changes_images_keeps_shape_and_dtype():
  images = _random((4, 28, 28, 1))
  out = transforms.rotate(images, 30)
  assert out.shape == images.shape and out.dtype == np.uint8
  assert all(not np.array_equal(a, b) for a, b in zip(out, images, strict=True))


def test_rotate_keeps_a_centred_blob():
  blob = _blob()
  for degrees in (30, 70, 130, 200, 250):
    diff = np.abs(transforms.rotate(blob, degrees).astype(int) - blob.astype(int))
    assert diff.max() <= 3, degrees


def test_rotate_moves_an_off_centre_dot_counter_clockwise():
  image = np.zeros((1, 9, 9, 1), np.uint8)
  image[0, 4, 8, 0] = 200  # right of the centre (4, 4)
  out = transforms.rotate(image, 90)[0, ..., 0]
  assert out[0, 4] == 200 and out.sum() == 200  # now above the centre


def test_rotate_rejects_float_images():
  with pytest.raises(ValueError, match="uint8"):
    transforms.rotate(np.zeros((1, 4, 4, 1), np.float32), 30)


def test_resize_constant_image_stays_constant():
  image = np.full((2, 28, 28, 1), 77, np.uint8)
  for size in ((32, 32), (7, 9), (28, 40)):
    out = transforms.resize(image, size)
    assert out.shape == (2, *size, 1)
    assert np.all(out == 77)


@pytest.mark.parametrize("size", [(32, 32), (10, 10)])
def test_resize_matches_pil_bilinear(size):
  images = _random((3, 28, 28, 1), seed=3)
  out = transforms.resize(images, size)
  for image, resized in zip(images, out, strict=True):
    expected = np.asarray(Image.fromarray(image[..., 0]).resize(size[::-1], Image.BILINEAR))
    assert np.abs(expected.astype(int) - resized[..., 0].astype(int)).max() <= 1


def test_resize_to_same_size_is_identity():
  images = _random((2, 32, 32, 3))
  np.testing.assert_array_equal(transforms.resize(images, (32, 32)), images)


def test_grey_to_rgb_repeats_the_channel():
  images = _random((3, 5, 6, 1))
  out = transforms.grey_to_rgb(images)
  assert out.shape == (3, 5, 6, 3)
  for c in range(3):
    np.testing.assert_array_equal(out[..., c], images[..., 0])
  with pytest.raises(ValueError, match="channels"):
    transforms.grey_to_rgb(_random((1, 2, 2, 2)))


def test_to_rgb32_keeps_mean_intensity():
  images = np.concatenate([_blob(), _blob(sigma=7.0)])
  out = transforms.to_rgb32(images)
  assert out.shape == (2, 32, 32, 3) and out.dtype == np.uint8
  np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), images.mean(axis=(1, 2, 3)), rtol=0.03)
