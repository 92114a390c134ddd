"""A checkpoint folder is ours and matches the run before anything in it is read (a planted
pickle is refused, never run), and a training killed with SIGKILL resumes to the forecasts of
the uninterrupted run, bit for bit on the CPU."""

import hashlib
import json
import os
import pickle
import random
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from salesfusion.datasets.synthetic import synthetic
from salesfusion.errors import InputError
from salesfusion.models.registry import create_model

SHOP = {"n_items": 20, "n_weeks": 24, "seed": 2}
# patience 3 with lr 0.005: validation stops improving at epoch 5 and training stops early at
# epoch 8, so a resume must carry early stopping and the plateau schedule across the kill.
GRU = {"lookback": 8, "hidden": 16, "batch_size": 32, "lr": 0.005, "patience": 3,
       "accelerator": "cpu"}
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume-shop")
    return folder, synthetic(folder, **SHOP)


@pytest.fixture(scope="module")
def trained(shop, tmp_path_factory):
    """A checkpoint folder written by a finished 2-epoch training, and its model."""
    folder = tmp_path_factory.mktemp("trained") / "checkpoints"
    model = create_model("gru", epochs=2, checkpoint_dir=str(folder), **GRU).fit(shop[1].panel())
    return folder, model


class Payload:
    """Unpickling this creates ``marker``: it proves whether a file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def forge_record(folder: Path, source: Path) -> None:
    """Our record copied from a real run, its hash rewritten to fit the planted checkpoint."""
    record = json.loads((source / "last.json").read_text())
    record["sha256"] = hashlib.sha256((folder / "last.ckpt").read_bytes()).hexdigest()
    (folder / "last.json").write_text(json.dumps(record))


def test_payload_runs_when_unpickled(tmp_path):
    """Control: the planted payload is live, so its marker staying absent below means it was
    never unpickled."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


def plant_pickle(folder, trained, marker):
    (folder / "last.ckpt").write_bytes(pickle.dumps(Payload(marker)))


def plant_pickle_with_record(folder, trained, marker):
    plant_pickle(folder, trained, marker)
    forge_record(folder, trained)


def plant_torch_pickle_with_record(folder, trained, marker):
    torch.save({"epoch": 1, "payload": Payload(marker)}, folder / "last.ckpt")
    forge_record(folder, trained)


def plant_lightning_checkpoint(folder, trained, marker):
    """Lightning's own format, whose callback state names a 'best model path': a pickle."""
    evil = folder.parent / "best.ckpt"
    evil.write_bytes(pickle.dumps(Payload(marker)))
    torch.save({"epoch": 1, "global_step": 5, "state_dict": {},
                "callbacks": {"ModelCheckpoint{'monitor': None}": {
                    "best_model_path": str(evil), "last_model_path": str(evil)}}},
               folder / "last.ckpt")
    forge_record(folder, trained)


def plant_foreign_file(folder, trained, marker):
    shutil.copytree(trained, folder, dirs_exist_ok=True)
    (folder / "notes.txt").write_text("mine")


def tamper_checkpoint(folder, trained, marker):
    shutil.copytree(trained, folder, dirs_exist_ok=True)
    content = (folder / "last.ckpt").read_bytes()
    (folder / "last.ckpt").write_bytes(content[:-8] + b"\x00" * 8)


def drop_checkpoint(folder, trained, marker):
    shutil.copy(trained / "last.json", folder / "last.json")


def link_checkpoint(folder, trained, marker):
    shutil.copy(trained / "last.json", folder / "last.json")
    (folder / "last.ckpt").symlink_to(trained / "last.ckpt")


def break_random_state(folder, trained, marker):
    """Our own checkpoint, its record rewritten to fit, whose random streams are not ours."""
    state = torch.load(trained / "last.ckpt", weights_only=True)
    del state["random"]["loader"]
    torch.save(state, folder / "last.ckpt")
    forge_record(folder, trained)


def break_record(folder, trained, marker):
    shutil.copy(trained / "last.ckpt", folder / "last.ckpt")
    (folder / "last.json").write_text("{not json")


@pytest.mark.parametrize(("plant", "reason"), [
    (plant_pickle, r"last\.ckpt has no record last\.json written beside it by salesfusion"),
    (plant_pickle_with_record, r"last\.ckpt is not a tensors-only training checkpoint"),
    (plant_torch_pickle_with_record, r"last\.ckpt is not a tensors-only training checkpoint"),
    (plant_lightning_checkpoint, r"last\.ckpt does not hold a salesfusion training state"),
    (plant_foreign_file, r"holds files salesfusion did not write \(notes\.txt\)"),
    (tamper_checkpoint, r"last\.ckpt does not match the SHA-256 recorded in last\.json"),
    (drop_checkpoint, r"last\.json is there but last\.ckpt is missing"),
    (break_record, r"last\.json is not valid JSON"),
    (link_checkpoint, r"last\.ckpt is not a plain file"),
    (break_random_state, r"its training state does not fit this model \(not a record of the "
                         r"random streams\)"),
])
def test_a_folder_we_did_not_write_is_refused_unread(shop, trained, tmp_path, plant, reason):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    marker = tmp_path / "payload-ran"
    plant(folder, trained[0], marker)
    before = snapshot(folder)
    with pytest.raises(InputError) as caught:
        create_model("gru", epochs=3, checkpoint_dir=str(folder), **GRU).fit(shop[1].panel())
    message = str(caught.value)
    assert message.startswith(f"checkpoint folder {folder}: ") and "\n" not in message
    assert re.search(reason, message), message
    assert not marker.exists()
    assert snapshot(folder) == before  # nothing written, nothing removed


@pytest.mark.parametrize(("where", "reason"), [
    ("a-file", r"not a folder"), ("a-file/checkpoints", r"cannot be created \(")])
def test_a_checkpoint_path_that_cannot_be_a_folder_is_refused(shop, tmp_path, where, reason):
    (tmp_path / "a-file").write_text("mine")
    folder = tmp_path / where
    with pytest.raises(InputError) as caught:
        create_model("gru", epochs=1, checkpoint_dir=str(folder), **GRU).fit(shop[1].panel())
    assert re.fullmatch(f"checkpoint folder {re.escape(str(folder))}: {reason}.*",
                        str(caught.value)), str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    assert (tmp_path / "a-file").read_text() == "mine"


def test_a_folder_of_another_configuration_is_refused(shop, trained, tmp_path):
    folder = tmp_path / "checkpoints"
    shutil.copytree(trained[0], folder)
    before = snapshot(folder)
    with pytest.raises(InputError, match=r"written by a different configuration \(lr 0\.005 -> "
                                         r"0\.02\)") as caught:
        create_model("gru", epochs=3, checkpoint_dir=str(folder),
                     **{**GRU, "lr": 0.02}).fit(shop[1].panel())
    assert str(caught.value).startswith(f"checkpoint folder {folder}: ")
    assert snapshot(folder) == before


def test_a_folder_of_other_data_is_refused(shop, trained, tmp_path):
    folder = tmp_path / "checkpoints"
    shutil.copytree(trained[0], folder)
    before = snapshot(folder)
    panel = shop[1].panel()
    items = panel.data["item_id"].unique().sort()
    other = panel.select_series(panel.data.select("item_id", "market").unique().filter(
        panel.data.select("item_id", "market").unique()["item_id"] != items[0]))
    with pytest.raises(InputError, match=r"written for different data \(fingerprint "):
        create_model("gru", epochs=3, checkpoint_dir=str(folder), **GRU).fit(other)
    assert snapshot(folder) == before


def test_fewer_epochs_than_the_checkpoint_holds_is_refused(shop, trained, tmp_path):
    folder = tmp_path / "checkpoints"
    shutil.copytree(trained[0], folder)
    with pytest.raises(InputError, match=r"holds 2 trained epochs, more than the 1 asked for"):
        create_model("gru", epochs=1, checkpoint_dir=str(folder), **GRU).fit(shop[1].panel())


def test_a_finished_folder_resumes_to_the_same_model(shop, trained, tmp_path):
    """Valid control; the record still pending (a kill between the two renames of a save) is
    completed, as its hash matches the checkpoint in place."""
    folder = tmp_path / "checkpoints"
    shutil.copytree(trained[0], folder)
    (folder / "last.json").rename(folder / "last.json.tmp")
    again = create_model("gru", epochs=2, checkpoint_dir=str(folder), **GRU).fit(shop[1].panel())
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt", "last.json"]
    assert again.notes[0].endswith("(resumed from a checkpoint)")
    assert again.predict(4).equals(trained[1].predict(4))


def test_a_checkpoint_folder_changes_no_forecast(shop, tmp_path):
    """A run with a checkpoint folder draws what a run without one does (the streams are only
    recorded, never re-seeded), so the forecasts of every earlier run still hold."""
    plain = create_model("gru", epochs=10, **GRU).fit(shop[1].panel())
    kept = create_model("gru", epochs=10, checkpoint_dir=str(tmp_path / "checkpoints"),
                        **GRU).fit(shop[1].panel())
    assert json.loads((tmp_path / "checkpoints" / "last.json").read_text())["epoch"] == 8
    assert kept.notes[0] == plain.notes[0]
    assert (kept.predict(4)["y_pred"].to_numpy().tobytes()
            == plain.predict(4)["y_pred"].to_numpy().tobytes())


def call_text(text: str, start: int) -> str:
    """The source of the call whose name starts at ``start``, to its closing parenthesis."""
    depth, opening = 0, text.index("(", start)
    for index in range(opening, len(text)):
        depth += {"(": 1, ")": -1}.get(text[index], 0)
        if depth == 0:
            break
    return text[start:index + 1]


def test_the_package_never_unpickles():
    calls = []
    for path in (SRC / "salesfusion").rglob("*.py"):
        text = path.read_text()
        assert "weights_only=False" not in text, path
        assert not re.search(r"\bpickle\.loads?\(|\bdill\b|\bjoblib\.load\(", text), path
        calls += [(path, call_text(text, m.start()))
                  for m in re.finditer(r"\btorch\.load\(", text)]
    assert calls, "no torch.load call found: the scan is broken"
    assert all("weights_only=True" in call for _, call in calls), calls


CHILD = """
import json, os, signal, sys
import lightning, numpy as np
from salesfusion.datasets.synthetic import synthetic
from salesfusion.models.registry import create_model

shop_folder, checkpoints, out, kill_epoch, kill_at = sys.argv[1:6]

class Kill(lightning.Callback):
    # SIGKILL at a step of an epoch (a share of its batches), the epochs before it checkpointed.
    def on_train_batch_end(self, trainer, module, outputs, batch, index):
        step = int(float(kill_at) * trainer.num_training_batches)
        if trainer.current_epoch == int(kill_epoch) and index == step:
            os.kill(os.getpid(), signal.SIGKILL)

if kill_epoch != "-1":
    plain = lightning.Trainer.__init__
    def with_kill(self, *args, callbacks=(), **kwargs):
        plain(self, *args, callbacks=[*callbacks, Kill()], **kwargs)
    lightning.Trainer.__init__ = with_kill

params = {**json.loads(os.environ["GRU_PARAMS"]), "epochs": 10, "checkpoint_dir": checkpoints}
shop = synthetic(shop_folder, **json.loads(os.environ["SHOP"]))
model = create_model("gru", **params).fit(shop.panel())
np.save(out, model.predict(4)["y_pred"].to_numpy())
json.dump(model.notes, open(out + ".json", "w"))
"""


def same(a, b) -> bool:
    """Bit-for-bit equality of two training states (nested dicts, lists, tensors, numbers)."""
    if isinstance(a, torch.Tensor):
        return (isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape
                and a.numpy().tobytes() == b.numpy().tobytes())
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


def test_resumed_after_sigkill_equals_uninterrupted(shop, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "GRU_PARAMS": json.dumps(GRU), "SHOP": json.dumps(SHOP)}
    folder = tmp_path / "checkpoints"

    def child(out: str, kill_epoch: int, kill_at: float = 0.0) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(script), str(shop[0]), str(folder),
                                 str(tmp_path / out), str(kill_epoch), str(kill_at)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    # Killed at a random step of a random epoch among 2-7 (0-based 1-6; the run stops early at
    # epoch 8, after its best at epoch 5): whatever the step, early stopping, the plateau
    # schedule and the random streams have to carry across the kill. The step is in the message.
    draw = random.SystemRandom()
    kill_epoch, kill_at = draw.randint(1, 6), round(draw.random(), 3)
    where = f"killed in 0-based epoch {kill_epoch} after {kill_at:.0%} of its batches"
    killed = child("killed.npy", kill_epoch, kill_at)
    # The uninterrupted run, meanwhile, here.
    whole = create_model("gru", epochs=10, checkpoint_dir=str(tmp_path / "whole"),
                         **GRU).fit(shop[1].panel())
    expected = whole.predict(4)["y_pred"].to_numpy()
    assert killed.wait(timeout=120) == -signal.SIGKILL, (where, killed.stdout.read().decode())
    assert json.loads((folder / "last.json").read_text())["epoch"] == kill_epoch, where
    resumed = child("resumed.npy", -1)
    assert resumed.wait(timeout=120) == 0, resumed.stdout.read().decode()
    assert np.load(tmp_path / "resumed.npy").tobytes() == expected.tobytes(), where
    note = json.loads((tmp_path / "resumed.npy.json").read_text())[0]
    assert note == whole.notes[0] + " (resumed from a checkpoint)"
    assert re.fullmatch(r"trained 8 epoch\(s\), best validation loss \S+ at epoch 5",
                        whole.notes[0]), whole.notes
    # Everything else ended the same too: last weights, optimiser, schedule, early stopping.
    final = [torch.load(f / "last.ckpt", weights_only=True) for f in (folder, tmp_path / "whole")]
    assert same(*final)
