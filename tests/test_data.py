import hashlib
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tltransfer import data
from tltransfer.config import format_classes, parse_classes
from conftest import write_idx


def test_shipped_file_is_the_official_mnist(mnist):
    assert hashlib.sha256(mnist.x_train.tobytes()).hexdigest() == data.X_TRAIN_SHA256
    assert hashlib.sha256(mnist.x_test.tobytes()).hexdigest() == data.X_TEST_SHA256
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert list(mnist.y_train[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_class_counts(mnist):
    source, target = data.source_task(mnist), data.target_task(mnist, 1.0)
    assert (len(source.y_train), len(source.y_test)) == (36017, 6031)
    assert len(target.y_test) == 3969
    assert source.num_classes == 6 and target.num_classes == 4
    assert len(data.split(mnist, data.TARGET_CLASSES, "6-9").y_train) == 23983


@pytest.mark.parametrize("p, n", [(0.005, 100), (0.01, 200), (0.1, 2300), (1.0, 23900)])
def test_subset_sizes_are_the_courses(mnist, p, n):
    task = data.target_task(mnist, p)
    assert len(task.y_train) == len(task.x_train) == n
    assert len(task.y_test) == 3969


def test_subsets_are_nested_prefixes(mnist):
    smaller, larger = data.target_task(mnist, 0.01), data.target_task(mnist, 0.1)
    np.testing.assert_array_equal(smaller.x_train, larger.x_train[:200])
    np.testing.assert_array_equal(smaller.y_train, larger.y_train[:200])
    # The first target image is the first 6-9 digit of the official training order.
    first = np.flatnonzero(mnist.y_train >= 6)[0]
    np.testing.assert_array_equal(larger.x_train[0], mnist.x_train[first])


def test_relabelling(mnist):
    target = data.target_task(mnist, 1.0)
    original = mnist.y_train[mnist.y_train >= 6][:len(target.y_train)]
    np.testing.assert_array_equal(target.y_train, original - 6)
    np.testing.assert_array_equal(np.unique(target.y_test), [0, 1, 2, 3])
    source = data.source_task(mnist)
    np.testing.assert_array_equal(source.y_train, mnist.y_train[mnist.y_train <= 5])


@pytest.mark.parametrize("p, message", [(0.0, "outside"), (1.5, "outside"),
                                        (0.001, "no training images")])
def test_bad_proportions_are_refused(mnist, p, message):
    with pytest.raises(ValueError, match=message):
        data.target_task(mnist, p)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_hash_check_refuses_a_damaged_file(tmp_path, damage):
    path = tmp_path / "mnist.npz"
    shutil.copy(data.MNIST_PATH, path)
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
    else:
        raw = raw[:len(raw) // 3]
    path.write_bytes(bytes(raw))
    with pytest.raises(data.DataError, match="corrupted"):
        data.load_mnist(str(path))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(data.DataError, match="missing"):
        data.load_mnist(str(tmp_path / "nowhere.npz"))


def test_images_tensor_holds_the_pixels_as_uint8(mnist):
    x = data.images_tensor(mnist.x_test[:5])
    assert x.shape == (5, 28, 28, 1) and x.dtype == tf.uint8
    np.testing.assert_array_equal(x.numpy()[..., 0], mnist.x_test[:5])


def take(ds, k):
    return np.stack([w.numpy() for w, _ in zip(ds, range(k))])


def test_index_windows_visit_every_image_once_per_epoch():
    windows = take(data.index_windows(n=250, batch_size=50, steps_per_window=5, seed=3), 4)
    assert windows.shape == (4, 5, 50)
    flat = windows.reshape(-1)
    for epoch in range(4):
        np.testing.assert_array_equal(np.sort(flat[epoch * 250:(epoch + 1) * 250]), np.arange(250))
    assert not np.array_equal(flat[:250], flat[250:500])  # reshuffled each epoch


def test_index_windows_are_a_tf_data_pipeline_in_the_order_runs_have_always_used():
    """The default study's first 30 windows of seed 0 (an epoch boundary among them), pinned
    from the Python generator that fed training before the pipeline: the same bits, so every
    result made before stays reproducible."""
    pipeline = data.index_windows(23900, 100, 10, seed=0)
    assert isinstance(pipeline, tf.data.Dataset)
    windows = take(pipeline, 30)
    assert windows.dtype == np.int32 and windows.shape == (30, 10, 100)
    assert windows[0, 0, :8].tolist() == [9730, 14429, 11836, 11843, 11570, 18018, 15156, 21141]
    assert windows[23, 9, -4:].tolist() == [20881, 150, 18862, 9909]
    assert windows[24, 0, :4].tolist() == [1737, 5536, 9358, 17733]
    assert hashlib.sha256(windows.tobytes()).hexdigest() == (
        "b454300c270b999cef48b61d6bd0e572c5559eb77c9688c8dc64edd2fc0304ef")


def test_index_windows_trace_once_per_process():
    take(data.index_windows(230, 10, 3, seed=1), 2)
    traced = data.index_windows.experimental_get_tracing_count()
    take(data.index_windows(500, 50, 4, seed=2, start_step=9), 2)
    assert data.index_windows.experimental_get_tracing_count() == traced


def test_index_windows_resume_mid_epoch_and_depend_on_seed():
    full = take(data.index_windows(230, 10, 3, seed=7), 20).reshape(-1, 10)
    resumed = take(data.index_windows(230, 10, 3, seed=7, start_step=31), 3).reshape(-1, 10)
    np.testing.assert_array_equal(resumed, full[31:40])
    other = take(data.index_windows(230, 10, 3, seed=8), 1).reshape(-1, 10)
    assert not np.array_equal(other, full[:3])


@pytest.mark.parametrize("spec, digits, canonical", [
    ("0-5", (0, 1, 2, 3, 4, 5), "0-5"), ("odd", (1, 3, 5, 7, 9), "1,3,5,7,9"),
    ("even", (0, 2, 4, 6, 8), "0,2,4,6,8"), ("7,0-2", (0, 1, 2, 7), "0-2,7"),
    ("4,3", (3, 4), "3,4"),
])
def test_class_specs(spec, digits, canonical):
    assert parse_classes(spec) == digits
    assert format_classes(digits) == canonical


@pytest.mark.parametrize("spec", ["5-2", "1", "0-10", "x", "1,1"])
def test_bad_class_specs_are_refused(spec):
    with pytest.raises(ValueError, match="classes"):
        parse_classes(spec)


def test_other_classes_relabel_in_order(mnist):
    task = data.target_task(mnist, 1.0, classes=(5, 6, 7, 8, 9))
    assert task.num_classes == 5 and len(task.y_test) == int(np.sum(mnist.y_test >= 5))
    np.testing.assert_array_equal(task.y_test, mnist.y_test[mnist.y_test >= 5] - 5)
    odd = data.source_task(mnist, parse_classes("odd"))
    np.testing.assert_array_equal(odd.y_train, mnist.y_train[mnist.y_train % 2 == 1] // 2)


def test_random_subsets_are_stratified_and_drawn_per_seed(mnist):
    full = data.target_task(mnist, 1.0)
    a = data.target_task(mnist, 0.1, subset="random", seed=0)
    again = data.target_task(mnist, 0.1, subset="random", seed=0)
    other = data.target_task(mnist, 0.1, subset="random", seed=1)
    assert len(a.y_train) == 2300
    np.testing.assert_array_equal(a.x_train, again.x_train)
    assert not np.array_equal(a.x_train, other.x_train)
    expected = 2300 * np.bincount(full.y_train) / len(full.y_train)
    assert np.all(np.abs(np.bincount(a.y_train) - expected) < 1)
    prefix = data.target_task(mnist, 0.1)
    assert not np.array_equal(a.x_train, prefix.x_train)


def test_idx_directory_loads_the_same_arrays(tmp_path, mnist):
    # A small slice of the shipped MNIST in the original distribution's format, half gzipped.
    arrays = {"x_train": mnist.x_train[:2000], "y_train": mnist.y_train[:2000],
              "x_test": mnist.x_test[:500], "y_test": mnist.y_test[:500]}
    for (key, stem, _), compress in zip(data.IDX_FILES, (True, False, True, False)):
        write_idx(tmp_path / stem, arrays[key], compress)
    loaded = data.load_data(str(tmp_path))
    for key, array in arrays.items():
        np.testing.assert_array_equal(getattr(loaded, key), array)
    assert loaded.sha256 != data.MNIST_SHA256
    task = data.target_task(loaded, 1.0)
    assert len(task.y_train) == 100 * (int(np.sum(arrays["y_train"] >= 6)) // 100)


@pytest.mark.parametrize("damage, message", [
    ("magic", "not an IDX file"), ("truncate", "truncated"), ("missing", "has no t10k-labels")])
def test_malformed_idx_is_a_clear_error(tmp_path, mnist, damage, message):
    arrays = {"x_train": mnist.x_train[:300], "y_train": mnist.y_train[:300],
              "x_test": mnist.x_test[:100], "y_test": mnist.y_test[:100]}
    for key, stem, _ in data.IDX_FILES:
        write_idx(tmp_path / stem, arrays[key], compress=False)
    images = tmp_path / "train-images-idx3-ubyte"
    if damage == "magic":
        images.write_bytes(b"\x00\x00\x09\x03" + images.read_bytes()[4:])
    elif damage == "truncate":
        images.write_bytes(images.read_bytes()[:5000])
    else:
        (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(data.DataError, match=message):
        data.load_data(str(tmp_path))


def test_course_mat_file_loads_the_same_tasks(tmp_path, mnist):
    import scipy.io
    source = data.source_task(mnist)
    targets = {p: data.target_task(mnist, p) for p in (0.01, 1.0)}
    full69 = targets[1.0]
    mat = {
        # As the course might store them: uint8 28x28, flat floats in [0, 1], one-hot, 0-3.
        "X_trn05": source.x_train, "t_trn05": np.eye(6, dtype=np.uint8)[source.y_train],
        "X_tst05": (source.x_test.reshape(-1, 784) / 255).astype(np.float32),
        "t_tst05": source.y_test[:, None],
        "X_trn69_1": full69.x_train, "t_trn69_1": full69.y_train[:, None],
        "X_trn69_0_01": targets[0.01].x_train, "t_trn69_0_01": targets[0.01].y_train[:, None],
        "X_tst69": (full69.x_test.reshape(-1, 784) / 255).astype(np.float32),
        "t_tst69": full69.y_test + 6,
    }
    scipy.io.savemat(tmp_path / "mnist.mat", mat)
    loaded = data.load_data(str(tmp_path / "mnist.mat"))
    for p in (0.005, 0.01, 0.1, 1.0):
        ours, theirs = data.target_task(mnist, p), data.target_task(loaded, p)
        np.testing.assert_array_equal(theirs.x_train, ours.x_train)
        np.testing.assert_array_equal(theirs.y_train, ours.y_train)
        np.testing.assert_array_equal(theirs.x_test, ours.x_test)
        np.testing.assert_array_equal(theirs.y_test, ours.y_test)
    np.testing.assert_array_equal(data.source_task(loaded).x_test, source.x_test)
    np.testing.assert_array_equal(data.source_task(loaded).y_train, source.y_train)
    del mat["X_tst69"]
    scipy.io.savemat(tmp_path / "broken.mat", mat)
    with pytest.raises(data.DataError, match="lacks X_tst69"):
        data.load_data(str(tmp_path / "broken.mat"))
    (tmp_path / "garbage.mat").write_bytes(b"not a matlab file at all")
    with pytest.raises(data.DataError, match="not a readable MATLAB file"):
        data.load_data(str(tmp_path / "garbage.mat"))
