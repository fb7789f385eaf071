"""A writer killed while it builds a folder (an export killed with its training run) leaves
``.NAME.tmp-*`` behind; the next export in the same place removes it (issue #27, item 12) — and
never the folder of a writer that is still alive."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from gen_keras.files import publish_folder, release_temporary, remove_stale_temporaries, temporary_folder

from conftest import ROOT

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from gen_keras.files import temporary_folder
    tmp = temporary_folder(Path(sys.argv[1]))
    (tmp / "half.onnx").write_bytes(b"x" * 1000)
    print(tmp, flush=True)
    time.sleep(600)
""")


def start_writer(target: Path) -> tuple[subprocess.Popen, Path]:
    """A real process building ``target``'s temporary folder; returns it and the folder."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)
    return proc, Path(proc.stdout.readline().strip())


def test_a_killed_writers_folder_goes_and_a_live_writers_stays(tmp_path):
    exports = tmp_path / "outputs" / "exports"
    killed, killed_tmp = start_writer(exports / "dcgan-1")
    live, live_tmp = start_writer(exports / "vae-2")
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(10)
        legacy = exports / ".old-run.tmp-abcd1234"  # left by a writer of the code before locks
        legacy.mkdir()
        (legacy / "f").write_text("x")
        unrelated = exports / ".notes.tmp"  # not a name temporary_folder makes
        unrelated.mkdir()
        link = exports / ".linked.tmp-zzzzzzzz"  # a symlink is never followed or removed
        link.symlink_to(tmp_path)
        assert killed_tmp.is_dir() and live_tmp.is_dir()

        mine = temporary_folder(exports / "dcgan-1")  # the rerun's export
        assert not killed_tmp.exists() and not legacy.exists()
        assert live_tmp.is_dir() and (live_tmp / "half.onnx").exists()
        assert unrelated.is_dir() and link.is_symlink() and (tmp_path / "outputs").is_dir()
        # This process's own folder is not taken for a leftover, by itself or by another process.
        assert remove_stale_temporaries(exports) == [] and mine.is_dir()
        cleanup = "import sys; from gen_keras.files import remove_stale_temporaries as r; print(r(sys.argv[1]))"
        other = subprocess.run([sys.executable, "-c", cleanup, str(exports)], capture_output=True,
                               text=True, cwd=ROOT, timeout=60, check=False)
        assert other.stdout.strip() == "[]" and mine.is_dir(), other.stderr
        (mine / "model.onnx").write_text("done")
        publish_folder(mine, exports / "dcgan-1")
        assert (exports / "dcgan-1" / "model.onnx").read_text() == "done"
    finally:
        for proc in (killed, live):
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
    # Once the live writer is dead too, its folder is a leftover like any other.
    assert remove_stale_temporaries(exports) == [live_tmp]
    assert sorted(p.name for p in exports.iterdir()) == [".linked.tmp-zzzzzzzz", ".notes.tmp", "dcgan-1"]


def test_a_publish_killed_between_its_renames_is_put_back(tmp_path):
    """publish_folder moves the previous version aside, then renames the new one in: a writer
    killed between the two leaves ``.NAME.old-*`` and no ``NAME``; the cleanup puts it back."""
    target = tmp_path / "export"
    target.mkdir()
    (target / "v").write_text("1")
    aside = tmp_path / ".export.old-1a2b3c4d"
    os.replace(target, aside)
    second = tmp_path / "other"
    second.mkdir()
    (tmp_path / ".other.old-99999999").mkdir()  # here the new version made it: the old one goes
    assert {p.name for p in remove_stale_temporaries(tmp_path)} == {"export", ".other.old-99999999"}
    assert (target / "v").read_text() == "1" and not aside.exists()
    assert not (tmp_path / ".other.old-99999999").exists() and second.is_dir()


def test_a_republish_replaces_the_folder_and_leaves_nothing(tmp_path):
    target = tmp_path / "export"
    for version in ("1", "2"):
        tmp = temporary_folder(target)
        (tmp / "v").write_text(version)
        publish_folder(tmp, target)
    assert (target / "v").read_text() == "2" and [p.name for p in tmp_path.iterdir()] == ["export"]
    unpublished = temporary_folder(target)  # abandoned (an export that failed): removed, released
    shutil.rmtree(unpublished)
    release_temporary(unpublished)
    assert [p.name for p in tmp_path.iterdir()] == ["export"]


def test_the_next_real_export_removes_a_killed_exports_folder(tmp_path):
    """The issue's case end to end: a process killed while exporting, then a real export."""
    from gen_keras.config_loader import load_config
    from gen_keras.export import export_model
    from gen_keras.models import build_model

    exports = tmp_path / "exports"
    killed, killed_tmp = start_writer(exports / "vae_mnist10k")
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(10)
    cfg = load_config(ROOT / "pipelines/configs/vae_mnist10k.yaml", ["model.hidden=16", "model.latent_dim=3"])
    export_model(build_model(cfg.model), exports / "vae_mnist10k", name="vae_mnist10k")
    assert not killed_tmp.exists()
    assert [p.name for p in exports.iterdir()] == ["vae_mnist10k"]
