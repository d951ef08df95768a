"""``agentkit run --image/--audio``: media files go to the model with the task, through ``main()``."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentkit import SessionStore
from agentkit.cli import main
from agentkit.testing.samples import png, wav


@pytest.fixture(scope="module")
def tiny_mm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from agentkit.testing.tiny_model import build_tiny_gemma4_multimodal

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield build_tiny_gemma4_multimodal(tmp_path_factory.mktemp("cli-mm") / "model")
    torch.set_num_threads(threads)


def _prompt_tokens(out: str) -> int:
    steps = [json.loads(line) for line in out.splitlines() if '"step_finished"' in line]
    return int(steps[0]["usage"]["prompt_tokens"])


@pytest.mark.transformers
def test_image_and_audio_reach_the_in_process_model(
    tiny_mm: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The prompt grows by exactly the soft tokens the image processor and the feature extractor ask for."""
    from transformers import AutoFeatureExtractor, AutoImageProcessor

    from agentkit.backends.transformers._media import _audio_tokens, _decode_audio, _open_image

    picture, clip = tmp_path / "red.png", tmp_path / "tone.wav"
    picture.write_bytes(png())
    clip.write_bytes(wav(hz=0))  # half a second of silence
    base = ["run", "--json", "--no-save", "-b", f"transformers:{tiny_mm}", "-t", "0", "--max-tokens", "2"]
    # A random-weight model runs into the 2-token budget (exit 1: not finished); what matters is the prompt.
    assert main([*base, "What is this?"]) in (0, 1)
    plain = _prompt_tokens(capsys.readouterr().out)
    assert main([*base, "--image", str(picture), "--audio", str(clip), "What is this?"]) in (0, 1)
    with_media = _prompt_tokens(capsys.readouterr().out)
    image = AutoImageProcessor.from_pretrained(tiny_mm)(images=[_open_image(picture.read_bytes())])
    extractor = AutoFeatureExtractor.from_pretrained(tiny_mm)
    sound = extractor([_decode_audio(clip.read_bytes(), extractor.sampling_rate)])
    # Each medium adds a begin marker, its soft tokens and an end marker (its placeholder is expanded away).
    n_image = int(image["num_soft_tokens_per_image"][0])
    n_audio = _audio_tokens(list(sound["input_features_mask"][0]))
    assert with_media - plain == (n_image + 2) + (n_audio + 2)


@pytest.mark.transformers
def test_a_json_run_on_the_in_process_model_leaves_stderr_empty(tiny_mm: Path, tmp_path: Path) -> None:
    """A program reading --json gets nothing on stderr: no loading bar redrawn with carriage returns (stderr is
    not a terminal), no destructor noise from torch at exit."""
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "AGENTKIT_HOME": str(tmp_path / "home")}
    env["PYTHONPATH"] = os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "agentkit.cli", "run", "--json", "-b", f"transformers:{tiny_mm}", "-t", "0"]
    proc = subprocess.run([*command, "--max-tokens", "2", "hi"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr  # 1: a random-weight model runs into the 2-token budget
    assert json.loads(proc.stdout.splitlines()[-1])["type"] in ("run_finished", "error")
    assert proc.stderr == ""


def test_media_files_are_saved_in_the_session_by_path(
    scripted, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    picture = tmp_path / "p.png"
    picture.write_bytes(png())
    assert main(["run", "--json", "-b", scripted(["Nice.<turn|>"]), "--image", str(picture), "look"]) == 0
    session = json.loads(capsys.readouterr().out.splitlines()[-1])["session_id"]
    first = SessionStore().load(session).messages[0]
    pin = hashlib.sha256(png()).hexdigest()  # the file is sent again only while it has these bytes
    assert first["content"] == [
        {"type": "image", "path": str(picture.resolve()), "sha256": pin},
        {"type": "text", "text": "look"},
    ]


def test_a_backend_without_media_says_it_leaves_the_picture_out_and_the_session_keeps_its_title(
    scripted, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    """Seen by a newcomer: `run -b scripted:... --image p.png "What is this?"` answered as if no picture had been
    given, said nothing, and saved the session untitled ("(untitled)" in the list and the TUI's sidebar)."""
    picture = tmp_path / "p.png"
    picture.write_bytes(png())
    assert main(["run", "-b", scripted(["Nice.<turn|>"]), "--image", str(picture), "What  is\nthis?"]) == 0
    out, err = capsys.readouterr()
    assert out == "Nice.\n"
    assert "the scripted backend takes no images, audio or video: the model will not see the image" in err
    (saved,) = SessionStore().list()
    assert saved.title == "What is this?"


@pytest.mark.parametrize("flag", ["--image", "--audio"])
def test_a_missing_or_unreadable_media_file_is_a_usage_error(
    flag: str, scripted, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    url = scripted(["x<turn|>"])
    assert main(["run", "-b", url, flag, str(tmp_path / "nope.png"), "hi"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["run", "-b", url, flag, str(tmp_path), "hi"]) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("flag", "content", "said"),
    [
        ("--audio", b"\x89PNG\r\n\x1a\n" + bytes(40), "is a PNG image, not audio; pass it with --image"),
        ("--audio", b"\xff\xd8\xff\xe0" + bytes(40), "is a JPEG image, not audio; pass it with --image"),
        ("--image", b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40), "is a WAV clip, not image; pass it with --audio"),
        ("--image", b"fLaC" + bytes(40), "is a FLAC clip, not image; pass it with --audio"),
        ("--image", b"a note, not a picture\n", "is text, not image"),
        ("--audio", b"", "is empty"),
        # Binary files in no media format: a DER private key, a GNOME keyring, a SQLite database (a browser's
        # passwords). Before, any binary file was "the backend's call" and went to the model's server.
        ("--image", bytes.fromhex("308204a40201000282010100") + bytes(range(200)), "not image in a format"),
        ("--image", b"GnomeKeyring\n\r\x00\n" + bytes(range(200)), "not image in a format"),
        ("--audio", b"SQLite format 3\x00" + bytes(range(200)), "not audio in a format"),
        ("--image", b"\x89PNG\r\n\x1a\n" + bytes(range(200)), "starts like a PNG image but is not one"),
    ],
)
def test_media_of_the_wrong_kind_is_refused_with_the_right_flag(
    flag: str, content: bytes, said: str, scripted, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    """Before, a picture passed as --audio went to the model as a clip (the scripted backend took it silently)."""
    media = tmp_path / "media.bin"
    media.write_bytes(content)
    assert main(["run", "-b", scripted(["x<turn|>"]), flag, str(media), "hi"]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


def test_media_in_a_format_agentkit_cannot_decode_is_passed_on(scripted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An M4A clip starts like no format libsndfile reads: its leading bytes are checked, the rest is the
    backend's call."""
    media = tmp_path / "clip.m4a"
    media.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(range(256)))
    assert main(["run", "-b", scripted(["x<turn|>"]), "--audio", str(media), "hi"]) == 0
