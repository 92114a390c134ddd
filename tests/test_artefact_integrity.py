"""A saved model folder is tamper-evident: the manifest covers its own content with a checksum,
an optional HMAC key (SALESFUSION_SIGNING_KEY) makes ``load`` refuse artefacts this deployment
did not sign, and every malformed manifest is one clear InputError (CLI: exit 2), never a
traceback."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from salesfusion.cli import app
from salesfusion.errors import InputError
from salesfusion.models.base import Forecaster
from salesfusion.models.registry import create_model

KEY = "SALESFUSION_SIGNING_KEY"
runner = CliRunner()
# Signing keys have at least 32 bytes.
OURS, THEIRS = "our deployment's secret, 32 bytes", "their deployment's secret, 32 bytes"


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv(KEY, raising=False)


@pytest.fixture(scope="module")
def models(module_shop_panel, tmp_path_factory):
    """Saved folders of a naive and a LightGBM model, copied afresh for each test."""
    root = tmp_path_factory.mktemp("saved")
    create_model("naive").fit(module_shop_panel).save(root / "naive")
    create_model("lightgbm", max_rounds=5).fit(module_shop_panel).save(root / "lightgbm")
    return root


@pytest.fixture
def saved(models, tmp_path):
    def copy(name: str = "naive") -> Path:
        shutil.copytree(models / name, tmp_path / name)
        return tmp_path / name
    return copy


def read(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def write(folder: Path, manifest) -> None:
    (folder / "manifest.json").write_text(json.dumps(manifest))


def reseal(folder: Path, manifest: dict) -> None:
    """Write ``manifest`` with a recomputed checksum, as a forger without the key could."""
    body = {k: v for k, v in manifest.items() if k not in ("checksum", "signature")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    write(folder, {**body, "checksum": hashlib.sha256(canonical.encode()).hexdigest()})


def refused(folder: Path, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern) as caught:
        Forecaster.load(folder)
    assert "\n" not in str(caught.value)


def test_valid_artefact_loads_and_carries_its_own_checksum(saved):
    folder = saved()
    manifest = read(folder)
    assert manifest["format_version"] == 2 and len(manifest["checksum"]) == 64
    assert "signature" not in manifest  # no key set
    assert Forecaster.load(folder).predict(2).height > 0


def test_edited_params_or_model_are_detected(saved):
    folder = saved()
    manifest = read(folder)
    write(folder, {**manifest, "params": {"interval_level": 95}})
    refused(folder, r"manifest\.json: the manifest's checksum does not match its content")
    write(folder, {**manifest, "model": "moving_average"})
    refused(folder, r"checksum does not match its content \(model, params or file list edited\)")


@pytest.mark.parametrize(("content", "message"), [
    (b"{not json", r"manifest\.json: not valid JSON \(line 1, column 2: Expecting property"),
    (b"\xff\xfe{}", r"manifest\.json: not UTF-8 \(byte 0\)"),
    (b'["files", "params"]', r"manifest\.json: the manifest is a JSON list, not an object"),
    (b"42", r"manifest\.json: the manifest is a JSON number, not an object"),
    (b"[" * 100_000, r"manifest\.json: JSON nested too deeply"),
])
def test_manifest_that_is_not_a_json_object(saved, content, message):
    folder = saved()
    (folder / "manifest.json").write_bytes(content)
    refused(folder, message)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m.pop("files"), r"manifest\.json: field 'files' is missing"),
    (lambda m: m.update(files=list(m["files"])),
     r"field 'files' has the wrong type: .*dictionary \(got a JSON list\)"),
    (lambda m: m.update(params="interval_level=80"),
     r"field 'params' has the wrong type: .*dictionary \(got a JSON string\)"),
    (lambda m: m.update(freq=7), r"field 'freq' has the wrong type"),
    (lambda m: m.update(covariates={"past_only": "footfall", "future_known": []}),
     r"field 'covariates\.past_only' has the wrong type: .*list \(got a JSON string\)"),
    (lambda m: m["files"].update({"history.parquet": "abc"}),
     r"field 'files\.history\.parquet' is not a SHA-256 hex digest \(got 'abc'\)"),
    (lambda m: m.update(format_version="2"),
     r"model format version '2' is not supported \(this salesfusion reads 2\)"),
    (lambda m: m.update(format_version=1), r"model format version 1 is not supported"),
    (lambda m: m.update(owner="me"), r"manifest\.json: unknown field 'owner'"),
])
def test_wrong_types_and_missing_fields(saved, edit, message):
    folder = saved()
    manifest = read(folder)
    edit(manifest)
    write(folder, manifest)
    refused(folder, message)


def test_resealed_manifest_is_still_checked_for_sense(saved):
    """A recomputed checksum passes the integrity check; what the manifest then says is still
    validated (the signing key is what stops a forger, see below)."""
    folder = saved()
    manifest = read(folder)
    reseal(folder, {**manifest, "model": "no_such_model"})
    refused(folder, r"manifest\.json: unknown model 'no_such_model'; the valid choices are")
    reseal(folder, {**manifest, "params": {"window": 3}})
    refused(folder, r"manifest\.json: model 'naive' has no parameter 'window'")
    reseal(folder, {**manifest, "params": {"interval_level": "high"}})
    refused(folder, r"model 'naive', parameter 'interval_level'")
    files = dict(manifest["files"])
    del files["history.parquet"]
    (folder / "history.parquet").unlink()
    reseal(folder, {**manifest, "files": files})
    refused(folder, r"manifest\.json: does not list 'history\.parquet'")


def test_files_missing_changed_unlisted_or_outside(saved, tmp_path):
    folder = saved()
    manifest = read(folder)
    (folder / "history_events.parquet").rename(tmp_path / "moved.parquet")
    refused(folder, r"file 'history_events\.parquet' listed in the manifest is missing")
    (tmp_path / "moved.parquet").rename(folder / "history_events.parquet")
    (folder / "extra.parquet").write_bytes(b"planted")
    refused(folder, r"file 'extra\.parquet' is not listed in the manifest")
    (folder / "extra.parquet").unlink()
    (folder / ".DS_Store").write_bytes(b"hidden files are not part of the artefact")
    assert Forecaster.load(folder).name == "naive"
    outside = tmp_path / "secret.txt"
    outside.write_text("x")
    reseal(folder, {**manifest, "files": {**manifest["files"], "../secret.txt":
                                          hashlib.sha256(b"x").hexdigest()}})
    refused(folder, r"lists '\.\./secret\.txt', which is not a file of the model folder")


def test_forged_state_with_matching_checksums_is_an_input_error(saved):
    folder = saved("lightgbm")
    (folder / "booster.txt").write_text("not a booster")
    manifest = read(folder)
    manifest["files"]["booster.txt"] = hashlib.sha256(b"not a booster").hexdigest()
    reseal(folder, manifest)
    refused(folder, r"lightgbm: the saved state does not fit the manifest \(.*\); the artefact "
                    r"is damaged or was modified")


def test_signing_key_signs_and_refuses_foreign_artefacts(module_shop_panel, saved, tmp_path,
                                                         monkeypatch):
    unsigned = saved()
    monkeypatch.setenv(KEY, "deployment secret, 32 bytes or more")
    signed = create_model("naive").fit(module_shop_panel).save(tmp_path / "signed")
    assert read(signed)["signature"].startswith("hmac-sha256:")
    assert Forecaster.load(signed).name == "naive"
    refused(unsigned, r"manifest\.json: the artefact is not signed and "
                      r"SALESFUSION_SIGNING_KEY is set")
    manifest = read(signed)
    reseal(signed, {**manifest, "params": {"interval_level": 95}})  # the key is unknown...
    write(signed, {**read(signed), "signature": manifest["signature"]})  # ...so reuse the old
    refused(signed, r"the signature does not match SALESFUSION_SIGNING_KEY")
    write(signed, manifest)
    monkeypatch.setenv(KEY, "another secret, 32 bytes or longer")
    refused(signed, r"the signature does not match SALESFUSION_SIGNING_KEY")
    monkeypatch.setenv(KEY, " ")
    refused(signed, r"SALESFUSION_SIGNING_KEY is set but empty")
    monkeypatch.delenv(KEY)
    assert Forecaster.load(signed).name == "naive"  # no key: signatures are not checked


def test_ensemble_members_are_signed_and_covered(module_shop_panel, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY, "deployment secret, 32 bytes or more")
    model = create_model("ensemble", members=["naive", "moving_average"], horizon=2)
    folder = model.fit(module_shop_panel).save(tmp_path / "ens")
    assert read(folder / "member_1")["signature"].startswith("hmac-sha256:")
    assert "member_1/manifest.json" in read(folder)["files"]
    assert Forecaster.load(folder).predict(2).equals(model.predict(2))
    member = read(folder / "member_1")
    write(folder / "member_1", {**member, "params": {"window": 2}})
    refused(folder, r"file 'member_1/manifest\.json' does not match its checksum")


def _predict(model: Path, spec: Path, out: Path, env: dict | None = None):
    return runner.invoke(app, ["predict", "--model", str(model), "--spec", str(spec),
                               "--horizon", "2", "--out", str(out)], env=env)


def _one_error_line(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_cli_predict_refuses_malformed_manifests(saved, shop_spec, tmp_path):
    folder = saved()
    out = tmp_path / "fc" / "forecast.parquet"
    assert _predict(folder, shop_spec, out).exit_code == 0  # valid control
    out.unlink()
    manifest = read(folder)
    (folder / "manifest.json").write_text("{not json")
    _one_error_line(_predict(folder, shop_spec, out), f"{folder}/manifest.json: not valid JSON",
                    "line 1, column 2")
    write(folder, {**manifest, "params": {"interval_level": 95}})
    _one_error_line(_predict(folder, shop_spec, out), f"{folder}/manifest.json",
                    "checksum does not match")
    write(folder, ["files"])
    _one_error_line(_predict(folder, shop_spec, out), "the manifest is a JSON list")
    write(folder, manifest)
    (folder / "history.parquet").unlink()
    _one_error_line(_predict(folder, shop_spec, out), f"{folder}: file 'history.parquet' "
                                                      f"listed in the manifest is missing")
    assert not out.exists()


def test_cli_train_signs_and_predict_refuses_another_key(shop_spec, tmp_path):
    model, out = tmp_path / "model", tmp_path / "fc" / "forecast.parquet"
    trained = runner.invoke(app, ["train", "--preset", "moving_average", "--spec",
                                  str(shop_spec), "--out", str(model)], env={KEY: OURS})
    assert trained.exit_code == 0, trained.output
    assert _predict(model, shop_spec, out, env={KEY: OURS}).exit_code == 0
    out.unlink()
    _one_error_line(_predict(model, shop_spec, out, env={KEY: THEIRS}),
                    f"{model}/manifest.json: the signature does not match "
                    f"SALESFUSION_SIGNING_KEY")
    assert not out.exists()
