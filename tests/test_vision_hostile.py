"""Hostile images against the vision runtime: what one request's images may cost everyone else.

Found by the outside review: a projector whose header ``mtmd`` aborts on (a NaN epsilon, heads
that do not divide the width) was registered and crashed its worker at the first image. And a
request of sixteen 5 KB PNGs of zeros (39 megapixels each, inside
the bounds) had its images counted in one call on the compute thread, which every model's decode
shares, so every other stream stood still for the whole count (~50 s on 2 cores). Counting now
takes one compute call per distinct image, and the streams step between them.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Engine, IntegrityError, LlamadeckError, Machine
from engine.runtime.llama.compute import COMPUTE
from engine.runtime.llama.model import Model
from engine.runtime.llama.vision import Projector
from engine.runtime.worker.loaded import count_images
from tests.support.images import image_bytes
from tests.support.tiny_gguf import write_tiny_gguf
from tests.support.tiny_mmproj import IMAGE_TOKENS, write_tiny_mmproj


class RecordingProjector(Projector):
    """The real projector, which also logs each count and, on the first, queues another compute call."""

    log: list[str]
    other: threading.Thread | None

    def count(self, image: bytes) -> int:
        self.log.append(f"count {len(self.log)}")
        if self.other is None:  # another caller of the compute thread arrives while this count runs
            self.other = threading.Thread(target=lambda: COMPUTE.call(lambda: self.log.append("other")))
            self.other.start()
            while not COMPUTE._calls:  # queued (this runs on the compute thread, so it waits for us)
                time.sleep(0.001)
        return super().count(image)


@pytest.fixture(scope="module")
def projector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordingProjector]:
    d = tmp_path_factory.mktemp("vision-hostile")
    model = Model.load(write_tiny_gguf(d / "Tiny-Q8_0.gguf")[0], n_gpu_layers=0, label="tiny")
    path = write_tiny_mmproj(d / "mmproj.gguf")
    projector = RecordingProjector.load(path, model, n_threads=1, use_gpu=False)
    assert isinstance(projector, RecordingProjector)
    yield projector
    projector.free()
    model.free()


def test_other_compute_work_runs_between_a_requests_images(projector: RecordingProjector) -> None:
    projector.log, projector.other = [], None
    images = [image_bytes("PNG", (30, 20), (i, 0, 0)) for i in range(3)]
    assert count_images(projector, images) == [IMAGE_TOKENS] * 3
    assert projector.other is not None
    projector.other.join()
    assert projector.log == ["count 0", "other", "count 2", "count 3"]


def test_an_image_sent_many_times_is_counted_once(projector: RecordingProjector, tmp_path: Path) -> None:
    projector.log, projector.other = [], threading.Thread()  # no other caller this time
    image = image_bytes("PNG", (30, 20))
    assert count_images(projector, [image] * 16) == [IMAGE_TOKENS] * 16
    assert projector.log == ["count 0"]


def test_images_are_decoded_two_at_a_time_in_a_process() -> None:
    """Twenty clients each sending fifteen 150 KB RGBA PNGs of zeros (160 MB decoded each) took the
    server to 3.2 GB when every request thread decoded at once (1.6 GB now); a third decode waits."""
    from engine.images import DECODING, check_image

    DECODING.acquire()
    DECODING.acquire()
    checked: list[bytes] = []
    third = threading.Thread(target=lambda: checked.append(check_image(image_bytes("PNG"))))
    try:
        third.start()
        third.join(0.5)
        assert third.is_alive() and not checked  # waiting for a decoding slot
    finally:
        DECODING.release()
        DECODING.release()
    third.join()
    assert checked == [image_bytes("PNG")]


def _patched(path: Path, key: str, form: str, value: float) -> Path:
    """The projector at ``path`` with one scalar of its header rewritten in place (same size)."""
    data = bytearray(path.read_bytes())
    at = data.index(key.encode()) + len(key) + 4  # the key, then its value's type (u32), then the value
    struct.pack_into(form, data, at, value)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("key", "form", "value", "words"),
    [
        ("clip.vision.attention.layer_norm_epsilon", "<f", float("nan"), "layer_norm_epsilon is nan"),
        ("clip.vision.embedding_length", "<I", 7, "2 attention heads do not divide the width 7"),
        ("clip.vision.patch_size", "<I", 0, "patch_size is 0"),
        ("clip.vision.image_size", "<I", 0, "image_size is 0"),
    ],
    ids=["nan-epsilon", "heads-do-not-divide", "no-patch", "no-image-size"],
)
def test_a_projector_mtmd_aborts_on_is_refused_at_create(
    tmp_path: Path, key: str, form: str, value: float, words: str
) -> None:
    model = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    projector = _patched(write_tiny_mmproj(tmp_path / "mmproj-Tiny-F16.gguf"), key, form, value)
    engine = Engine(machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None))
    try:
        with pytest.raises(IntegrityError, match=words) as caught:
            engine.create("eyes", f"FROM {model}\nFROM {projector}\n")
        assert "\n" not in str(caught.value)
        assert engine.list_models() == []
    finally:
        engine.close()


def test_images_pillow_copes_with_print_nothing(tmp_path: Path) -> None:
    """A JPEG with corrupt EXIF and a palette PNG with byte transparency are read without Pillow's
    warnings on stderr (each request of them printed two lines into the server's log or the app)."""
    import io
    import subprocess
    import sys

    from PIL import Image

    jpeg, png = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (40, 20)).save(jpeg, format="JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff")
    Image.new("P", (30, 20), 3).save(png, format="PNG", transparency=3)
    (tmp_path / "exif.jpg").write_bytes(jpeg.getvalue())
    (tmp_path / "palette.png").write_bytes(png.getvalue())
    code = (
        "import sys; from pathlib import Path; from engine.images import check_image, decode_image\n"
        "for name in ('exif.jpg', 'palette.png'):\n"
        "    data = Path(sys.argv[1], name).read_bytes(); check_image(data); decode_image(data)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert done.stderr == ""


def test_a_projector_llama_cpp_cannot_load_is_refused_without_the_stores_path(tmp_path: Path) -> None:
    """clip's refusal names the file it read, the projector's blob in the store: the API sent it on."""
    model = write_tiny_gguf(tmp_path / "Tiny-Q8_0.gguf")[0]
    projector = write_tiny_mmproj(tmp_path / "mmproj-Tiny-F16.gguf")
    data = projector.read_bytes()
    projector.write_bytes(data.replace(b"mlp", b"xyz", 1))  # clip.projector_type: one llama.cpp lacks
    engine = Engine(machine=lambda: Machine(free_ram=16 << 30, gpu_free_vram=None))
    try:
        engine.create("eyes", f"FROM {model}\nFROM {projector}\n")
        with pytest.raises(LlamadeckError, match="could not load the vision projector") as caught:
            list(engine.chat("eyes", [{"role": "user", "content": "hi"}], options={"num_predict": 1}))
        assert str(engine.home) not in str(caught.value) and "\n" not in str(caught.value)
    finally:
        engine.close()
