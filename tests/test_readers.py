"""Real readers read what we write, and we read what they write: ormb, ModelPack/modctl, KitOps, oras.

Foreign artifacts are built here the way each upstream writer lays them out (ormb's Metadata JSON
and one ``model/`` tar+gzip layer, modctl's per-file tar layers, KitOps' per-kind tars, ``oras push``
files) and pushed to the real test registry; what modelhaul writes is read back from that registry
and checked against the rules the upstream readers enforce (see DESIGN.md, "What the real readers
require").
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from rfc3339_validator import validate_rfc3339

from modelhaul import artifacts, config, oci
from modelhaul.errors import BundleError
from modelhaul.registry import RegistryTarget
from tests.fixtures.registry import unique_repo

SCHEMA = json.loads((Path(__file__).parent / "data" / "modelpack-config-schema.json").read_text())
ORMB_VOCABULARY = set(config.ORMB_FORMATS)


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELHAUL_HOME", str(tmp_path / "home"))


def modelpack_validator() -> jsonschema.Draft202012Validator:
    """The ModelPack schema with ``format: date-time`` enforced (jsonschema skips formats by default)."""
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    assert "date-time" in checker.checkers, "install rfc3339-validator: date-time would go unchecked"
    return jsonschema.Draft202012Validator(SCHEMA, format_checker=checker)


def test_the_schema_check_really_checks_dates():
    bad = {"descriptor": {"name": "m", "createdAt": "2024-05-01T10:00:00"}, "config": {},
           "modelfs": {"type": "layers", "diffIds": ["sha256:" + "0" * 64]}}
    assert not modelpack_validator().is_valid(bad)


# -- helpers: the registry as the reader sees it ---------------------------------------------------


def target_of(registry, repo: str) -> RegistryTarget:
    return RegistryTarget(registry.host, repo, registry.options)


def blob_bytes(target: RegistryTarget, desc: dict[str, Any], tmp_path: Path) -> bytes:
    out = tmp_path / desc["digest"].replace(":", "-")
    target.fetch_blob(desc["digest"], desc["size"], out)
    return out.read_bytes()


def push_artifact(registry, config_blob: oci.Blob, layers: list[oci.Blob], *, artifact_type: str | None = None,
                  annotations: dict[str, str] | None = None) -> str:
    """Push a foreign artifact exactly as given; returns its reference."""
    repo = unique_repo("readers")
    target = target_of(registry, repo)
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": oci.MANIFEST_V1}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = config_blob.descriptor()
    doc["layers"] = [b.descriptor() for b in layers]
    if annotations:
        doc["annotations"] = annotations
    target.put_blobs([config_blob, *layers])
    target.put_manifest(json.dumps(doc).encode(), oci.MANIFEST_V1, "v1")
    return registry.ref(repo, "v1")


def tar_bytes(entries: dict[str, bytes], *, dirs: tuple[str, ...] = (), compress: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    if compress == "gzip":
        return gzip.compress(raw, mtime=0)
    if compress == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(raw)
    return raw


def files_of(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def published(registry, src: Path, bundle_format: str, tmp_path: Path, **kw: Any) -> tuple[dict, bytes, dict]:
    """Publish ``src`` to the test registry; (manifest JSON, config blob bytes, publish result)."""
    repo = unique_repo("readers")
    res = artifacts.publish(src, registry.ref(repo, "v1"), bundle_format=bundle_format, options=registry.options,
                            **kw)
    target = target_of(registry, repo)
    manifest = target.get_manifest("v1").json
    return manifest, blob_bytes(target, manifest["config"], tmp_path), res


# -- ormb and ModelPack configs: RFC 3339 with a zone, raw UTF-8, for every ormbfile form -----------

TEXT = "churn model 😀 — 模型 für Kündigungen"


@pytest.mark.parametrize("created, expected", [
    ("2024-05-01", "2024-05-01T00:00:00Z"),
    ("2024-05-01 10:00:00", "2024-05-01T10:00:00Z"),
    ("2024-05-01T10:00:00", "2024-05-01T10:00:00Z"),
    ("'2024-05-01T10:00:00'", "2024-05-01T10:00:00Z"),
    ("2024-05-01T10:00:00+02:00", "2024-05-01T10:00:00+02:00"),
])
@pytest.mark.parametrize("bundle_format", ["ormb", "modelpack"])
def test_every_ormbfile_form_gives_rfc3339_created_and_raw_utf8(registry, tmp_path, created, expected,
                                                                bundle_format):
    src = tmp_path / "src"
    (src / "model").mkdir(parents=True)
    (src / "model" / "model.onnx").write_bytes(b"\x08\x07onnx-ish")
    (src / "ormbfile.yaml").write_text(f"created: {created}\ndescription: {TEXT}\nauthor: Zoë 🧪\n", encoding="utf-8")
    manifest, cfg_bytes, _ = published(registry, src, bundle_format, tmp_path)

    ann = manifest["annotations"]
    assert ann[oci.ANNOTATION_CREATED] == expected and validate_rfc3339(ann[oci.ANNOTATION_CREATED])
    full = ann[oci.ANNOTATION_CONFIG]
    assert json.loads(full)["created"] == expected and TEXT in full and "\\u" not in full
    assert "\\u" not in cfg_bytes.decode("utf-8") and TEXT.encode() in cfg_bytes
    doc = json.loads(cfg_bytes)
    if bundle_format == "ormb":
        assert manifest["config"]["mediaType"] == oci.ORMB_CONFIG
        assert doc["created"] == expected and validate_rfc3339(doc["created"])
        # ormb decodes its config with yaml.v2: it must be plain YAML with the text as written
        assert yaml.safe_load(cfg_bytes.decode("utf-8"))["description"] == TEXT
        assert doc["directoryStructure"] == ["model/model.onnx"] and doc["format"] == "ONNX"
    else:
        modelpack_validator().validate(doc)
        assert doc["descriptor"]["createdAt"] == expected and doc["descriptor"]["description"] == TEXT


@pytest.mark.parametrize("files, ormb_format, precise", [
    ({"model.onnx": b"x"}, "ONNX", "ONNX"),
    ({"model.joblib": b"x"}, "SKLearn", "SKLearn"),
    ({"model.skops": b"PK"}, "Others", "SKLearn"),  # ormb's SKLearn validator wants a .joblib
    ({"model.xgboost": b"x"}, "XGBoost", "XGBoost"),
    ({"model.ubj": b"{"}, "Others", "XGBoost"),  # ... and XGBoost a .xgboost file
    ({"model.pt": b"PK"}, "TorchScript", "TorchScript"),
    ({"model.keras": b"PK"}, "Others", "Keras"),
    ({"model.pt2": b"PK"}, "Others", "PT2"),
    ({"model.lgb": b"tree"}, "Others", "LightGBM"),
    ({"model.safetensors": b"{}"}, "Others", "SafeTensors"),
    ({"model.gguf": b"GGUF"}, "Others", "GGUF"),
    ({"net-symbol.json": b"{}", "net-0000.params": b"p"}, "MXNetParams", "MXNetParams"),
    ({"MLmodel": b"flavors:\n  sklearn: {pickled_model: model.pkl}\n", "model.pkl": b"x"}, "MLflow", "SKLearn"),
])
def test_ormb_config_uses_ormb_vocabulary_while_modelconfig_keeps_the_format(registry, tmp_path, files,
                                                                                ormb_format, precise):
    src = tmp_path / "src"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    manifest, cfg_bytes, res = published(registry, src, "ormb", tmp_path)
    doc = json.loads(cfg_bytes)
    assert doc["format"] == ormb_format and doc["format"] in ORMB_VOCABULARY
    assert json.loads(manifest["annotations"][oci.ANNOTATION_CONFIG])["format"] == precise
    out = tmp_path / "out"
    artifacts.fetch(res["ref"], out, options=registry.options)
    assert config.load(out).format == precise and files_of(out / "model") == files


def ormb_written(registry, created: str) -> tuple[str, dict[str, bytes]]:
    """An artifact as `ormb save` + `ormb push` write it: Metadata JSON, one tar+gzip of model/ entries."""
    files = {"model.onnx": b"\x08\x07weights", "assets/vocab.txt": "wörter 😀\n".encode()}
    metadata = {
        "author": "ormb user", "created": created, "description": "from ormb 😀", "format": "ONNX",
        "framework": "PyTorch", "metrics": {"training": [{"name": "acc", "value": "0.9"}]},
        "directoryStructure": ["model", "model/assets", "model/assets/vocab.txt", "model/model.onnx"],
    }
    cfg = oci.Blob.from_bytes(oci.ORMB_CONFIG, json.dumps(metadata, ensure_ascii=False).encode())
    layer = oci.Blob.from_bytes(oci.ORMB_LAYER, tar_bytes({f"model/{k}": v for k, v in files.items()},
                                                          dirs=("model", "model/assets"), compress="gzip"))
    return push_artifact(registry, cfg, [layer]), files


@pytest.mark.parametrize("created, expected", [
    ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"),
    ("2024-05-01T12:00:00+02:00", "2024-05-01T12:00:00+02:00"),
    ("0001-01-01T00:00:00Z", None),  # Go's zero time: what ormb writes when created is unset
])
def test_ormb_artifact_reads_and_republishes_in_both_formats(registry, tmp_path, created, expected):
    ref, files = ormb_written(registry, created)
    out = tmp_path / "out"
    artifacts.fetch(ref, out, options=registry.options)
    cfg = config.load(out)
    assert files_of(out / "model") == files
    assert cfg.directory_structure == ["assets", "assets/vocab.txt", "model.onnx"]  # model/ prefix gone
    assert (config.rfc3339(cfg.created) if cfg.created else None) == expected
    assert cfg.metric("acc") == 0.9 and cfg.description == "from ormb 😀"

    for fmt in ("ormb", "modelpack"):
        manifest, cfg_bytes, _ = published(registry, out, fmt, tmp_path / fmt)
        assert manifest["annotations"].get(oci.ANNOTATION_CREATED) == expected
        doc = json.loads(cfg_bytes)
        if fmt == "ormb":
            assert doc.get("created") == expected
            assert doc["directoryStructure"] == ["model/assets/vocab.txt", "model/model.onnx"]
        else:
            modelpack_validator().validate(doc)
            assert doc["descriptor"].get("createdAt") == expected


# -- ModelPack / modctl layers: .raw, .tar, .tar+gzip, .tar+zstd; CNAI; anything else refused -------

WEIGHTS = b"\x00\x01weights" * 1000
MODCTL_FILES = {"model.safetensors": WEIGHTS, "config.json": b'{"model_type": "bert"}',
                "tokenizer/vocab.txt": b"[CLS]\n[SEP]\n", "README.md": b"# bert\n"}


def modctl_artifact(packing: str, *, prefix: str = "application/vnd.cncf.model.",
                    path_key: str = oci.ANNOTATION_FILEPATH, config_type: str = oci.MODELPACK_CONFIG,
                    artifact_type: str = oci.MODELPACK_ARTIFACT) -> tuple[oci.Blob, list[oci.Blob]]:
    """Layers as modctl builds them: one per file, a tar holding the file under its full relative path."""
    kinds = {"model.safetensors": "weight", "config.json": "weight.config", "tokenizer/vocab.txt": "weight.config",
             "README.md": "doc"}
    layers = []
    for rel, data in MODCTL_FILES.items():
        if packing == "raw":
            body = data
        else:
            body = tar_bytes({rel: data}, compress={"tar": None, "tar+gzip": "gzip", "tar+zstd": "zstd"}[packing])
        layers.append(oci.Blob.from_bytes(f"{prefix}{kinds[rel]}.v1.{packing}", body, {path_key: rel}))
    doc = {"descriptor": {"name": "bert", "createdAt": "2025-01-02T03:04:05Z", "family": "bert"},
           "config": {"format": "safetensors"}, "modelfs": {"type": "layers", "diffIds": [b.digest for b in layers]}}
    return oci.Blob.from_bytes(config_type, json.dumps(doc).encode()), layers


@pytest.mark.parametrize("packing", ["raw", "tar", "tar+gzip", "tar+zstd"])
def test_modctl_layers_in_every_packing_come_out_as_the_files(registry, tmp_path, packing):
    cfg_blob, layers = modctl_artifact(packing)
    ref = push_artifact(registry, cfg_blob, layers, artifact_type=oci.MODELPACK_ARTIFACT)
    out = tmp_path / "out"
    artifacts.fetch(ref, out, options=registry.options)
    assert files_of(out / "model") == MODCTL_FILES
    cfg = config.load(out)
    assert config.rfc3339(cfg.created) == "2025-01-02T03:04:05Z" and cfg.format == "SafeTensors"


def test_older_cnai_artifacts_are_read(registry, tmp_path):
    cfg_blob, layers = modctl_artifact("raw", prefix="application/vnd.cnai.model.", path_key="org.cnai.model.filepath",
                                       config_type="application/vnd.cnai.model.config.v1+json")
    ref = push_artifact(registry, cfg_blob, layers, artifact_type="application/vnd.cnai.model.manifest.v1+json")
    info = artifacts.inspect(ref, options=registry.options)
    assert info["bundle_format"] == "modelpack" and sorted(ly["path"] for ly in info["layers"]) == sorted(MODCTL_FILES)
    out = tmp_path / "out"
    artifacts.fetch(ref, out, options=registry.options)
    assert files_of(out / "model") == MODCTL_FILES


@pytest.mark.parametrize("media_type", [
    "application/vnd.cncf.model.weight.v1.tar+lz4",
    "application/vnd.cncf.model.weight.v2.raw",
    "application/octet-stream",
])
def test_a_layer_type_not_understood_is_refused_naming_layer_and_type(registry, tmp_path, media_type):
    cfg_blob, layers = modctl_artifact("raw")
    odd = oci.Blob.from_bytes(media_type, b"\x28\xb5\x2f\xfd compressed?", {oci.ANNOTATION_FILEPATH: "extra.bin"})
    ref = push_artifact(registry, cfg_blob, [*layers, odd], artifact_type=oci.MODELPACK_ARTIFACT)
    out = tmp_path / "out"
    with pytest.raises(BundleError) as err:
        artifacts.fetch(ref, out, options=registry.options)
    msg = str(err.value)
    assert odd.digest in msg and repr(media_type) in msg and "extra.bin" in msg and "\n" not in msg
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))


def test_a_tar_zstd_layer_that_is_not_zstd_is_refused(registry, tmp_path):
    bogus = oci.Blob.from_bytes("application/vnd.cncf.model.weight.v1.tar+zstd", WEIGHTS,
                                {oci.ANNOTATION_FILEPATH: "model.safetensors"})
    cfg = oci.Blob.from_bytes(oci.MODELPACK_CONFIG, json.dumps(
        {"descriptor": {"name": "x"}, "config": {}, "modelfs": {"type": "layers", "diffIds": [bogus.digest]}}).encode())
    ref = push_artifact(registry, cfg, [bogus], artifact_type=oci.MODELPACK_ARTIFACT)
    with pytest.raises(BundleError, match="zstd"):
        artifacts.fetch(ref, tmp_path / "out", options=registry.options)
    assert not (tmp_path / "out").exists()


# -- oras push: title-annotated files with an empty or unknown config are a model directory ---------


def oras_push(registry, workdir: Path, names: list[str], monkeypatch, **kw: Any) -> str:
    """Push with oras-py's own client, laid out exactly as `oras push` lays files and directories."""
    from oras.provider import Registry

    repo = unique_repo("oras")
    monkeypatch.chdir(workdir)  # oras only pushes paths below the working directory
    Registry(hostname=registry.host, insecure=True).push(target=f"{registry.host}/{repo}:v1", files=names, **kw)
    return registry.ref(repo, "v1")


def test_oras_pushed_files_read_as_a_model_directory(registry, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "model.onnx").write_bytes(b"\x08\x07onnx")
    (work / "labels.txt").write_text("cat\ndog\n")
    ref = oras_push(registry, work, ["model.onnx", "labels.txt"], monkeypatch)
    manifest = target_of(registry, ref.split("/", 1)[1].rsplit(":", 1)[0]).get_manifest("v1").json
    assert manifest["config"]["mediaType"] in (oci.EMPTY_CONFIG, "application/vnd.unknown.config.v1+json")

    out = tmp_path / "out"
    res = artifacts.fetch(ref, out, options=registry.options)
    assert files_of(out / "model") == {"model.onnx": b"\x08\x07onnx", "labels.txt": b"cat\ndog\n"}
    assert res["format"] == "ONNX" and config.load(out).format == "ONNX"
    assert artifacts.inspect(ref, options=registry.options)["bundle_format"] == "oras"


def test_an_oras_pushed_mlflow_directory_reads_as_the_mlflow_model(registry, tmp_path, monkeypatch):
    work = tmp_path / "work"
    (work / "my-model").mkdir(parents=True)
    (work / "my-model" / "MLmodel").write_text("flavors:\n  sklearn: {pickled_model: model.pkl}\n")
    (work / "my-model" / "model.pkl").write_bytes(b"\x80\x04N.")
    ref = oras_push(registry, work, ["my-model"], monkeypatch)
    out = tmp_path / "out"
    artifacts.fetch(ref, out, options=registry.options)
    # under its title, as `oras pull` writes it (issue 21: alone or not, the same path)
    assert sorted(files_of(out / "model")) == ["my-model/MLmodel", "my-model/model.pkl"]
    cfg = config.load(out)
    assert cfg.format == "SKLearn" and "my-model/MLmodel" in cfg.directory_structure


def test_an_image_is_still_not_a_model(registry, tmp_path):
    layer = oci.Blob.from_bytes("application/vnd.oci.image.layer.v1.tar+gzip",
                                tar_bytes({"bin/sh": b"x"}, compress="gzip"))
    cfg = oci.Blob.from_bytes("application/vnd.oci.image.config.v1+json", b'{"architecture": "amd64"}')
    ref = push_artifact(registry, cfg, [layer])
    with pytest.raises(BundleError, match="is not a model"):
        artifacts.fetch(ref, tmp_path / "out", options=registry.options)


# -- ModelPack layer kinds: what the format parsers know, guesses marked untested -----------------


def test_layer_kinds_come_from_what_the_files_are(registry, tmp_path):
    import lightgbm
    import numpy as np
    import xgboost
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    lightgbm.train({"objective": "multiclass", "num_class": 3, "verbose": -1, "num_iterations": 2},
                   lightgbm.Dataset(x, y)).save_model(str(src / "model.txt"))
    xgboost.XGBClassifier(n_estimators=2, max_depth=2).fit(x, y).save_model(str(src / "booster.json"))
    np.save(src / "embeddings.npy", np.zeros((3, 4)))
    np.save(src / "data" / "holdout.npy", x[:5])
    (src / "train.csv").write_text("a,b\n1,2\n")
    (src / "README.md").write_text("# iris\n")
    (src / "settings.yaml").write_text("k: v\n")
    manifest, cfg_bytes, _ = published(registry, src, "modelpack", tmp_path,
                                       config={"framework": "LightGBM", "format": "LightGBM"})
    layers = {ly["annotations"][oci.ANNOTATION_FILEPATH]: ly for ly in manifest["layers"]}
    kinds = {k: v["mediaType"].removeprefix(oci.MODELPACK_LAYER_PREFIX).removesuffix(".v1.raw")
             for k, v in layers.items()}
    untested = {k for k, v in layers.items() if v["annotations"].get("org.cncf.model.file.mediatype.untested")}
    assert kinds == {"model.txt": "weight", "booster.json": "weight", "embeddings.npy": "weight",
                     "data/holdout.npy": "dataset", "train.csv": "dataset", "README.md": "doc",
                     "settings.yaml": "weight.config"}
    assert untested == {"embeddings.npy", "data/holdout.npy", "train.csv", "settings.yaml"}
    assert all(layers[k]["annotations"]["org.cncf.model.file.mediatype.untested"] == "true" for k in untested)
    doc = json.loads(cfg_bytes)
    modelpack_validator().validate(doc)
    assert "family" not in doc["descriptor"]  # LightGBM is the framework, not a model family


def test_descriptor_family_is_the_model_family_and_round_trips(registry, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    manifest, cfg_bytes, res = published(registry, src, "modelpack", tmp_path,
                                         config={"framework": "PyTorch", "labels": {"family": "llama3"}})
    assert json.loads(cfg_bytes)["descriptor"]["family"] == "llama3"
    cfg_blob, layers = modctl_artifact("raw")
    ref = push_artifact(registry, cfg_blob, layers, artifact_type=oci.MODELPACK_ARTIFACT)
    cfg = artifacts.inspect(ref, options=registry.options)["config"]
    assert cfg["labels"]["family"] == "bert" and "framework" not in cfg


# -- KitOps ModelKits: per-kind tar layers and the Kitfile as config -------------------------------


def kit_tar(entries: dict[str, bytes]) -> bytes:
    """A KitOps layer tar: headers normalised as kit writes them (times zeroed, uid 1000, gid 0)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), 0o644, 1000, 0, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def kitops_modelkit(registry, model: dict[str, Any], files: dict[str, bytes], *, gzip_layers: bool = False) -> str:
    layer_entries = {"model": {model["path"]: files[model["path"]]},
                     "dataset": {k: v for k, v in files.items() if k.startswith("data/")},
                     "docs": {k: v for k, v in files.items() if k == "README.md"}}
    kitfile: dict[str, Any] = {"manifestVersion": "1.0", "package": {"name": "kit", "authors": ["Ada"]},
                               "model": dict(model), "datasets": [], "docs": []}
    layers = []
    for kind, entries in layer_entries.items():
        if not entries:
            continue
        raw = kit_tar(entries)
        body = gzip.compress(raw, mtime=0) if gzip_layers else raw
        blob = oci.Blob.from_bytes(f"application/vnd.kitops.modelkit.{kind}.v1.tar{'+gzip' if gzip_layers else ''}",
                                   body)
        layers.append(blob)
        entry = {"digest": blob.digest, "diffId": oci.sha256_bytes(raw)}
        if kind == "model":
            kitfile["model"].update(entry)
        elif kind == "dataset":
            kitfile["datasets"] = [{"name": "data", "path": "data/", **entry}]
        else:
            kitfile["docs"] = [{"path": "README.md", **entry}]
    cfg = oci.Blob.from_bytes(oci.KITOPS_CONFIG, json.dumps(kitfile).encode())
    return push_artifact(registry, cfg, layers, annotations={"ml.kitops.modelkit.cli-version": "1.0.0"})


@pytest.mark.parametrize("gzip_layers", [False, True])
def test_an_onnx_modelkit_deploys_with_its_kitfile_format(registry, tmp_path, gzip_layers):
    from modelhaul import steps

    files = {"model.onnx": b"\x08\x07onnx", "data/train.csv": b"a,b\n1,2\n", "README.md": b"# kit\n"}
    ref = kitops_modelkit(registry, {"name": "iris", "path": "model.onnx", "format": "onnx",
                                     "framework": "pytorch"}, files, gzip_layers=gzip_layers)
    out = tmp_path / "out"
    artifacts.fetch(ref, out, options=registry.options)
    assert files_of(out / "model") == files and config.load(out).format == "ONNX"
    res = steps.deploy(ref=ref, target="seldon", name="kit", render_dir=str(tmp_path / "render"), plain_http=True)
    (path,) = [p for p in res["manifests"] if "seldondeployment" in p.lower()] or res["manifests"][-1:]
    sdep = yaml.safe_load(Path(path).read_text())
    assert sdep["spec"]["predictors"][0]["graph"]["implementation"] == "TRITON_SERVER"


@pytest.mark.parametrize("params, expected", [
    ({"lr": 0.1, "layers": [64, 32]}, [{"name": "lr", "value": "0.1"}, {"name": "layers", "value": "[64, 32]"}]),
    ([{"lr": 0.1}, "warmup"], [{"name": "parameters", "value": '[{"lr": 0.1}, "warmup"]'}]),
    ("temperature: 0.7", [{"name": "parameters", "value": "temperature: 0.7"}]),
    (42, [{"name": "parameters", "value": "42"}]),
])
def test_kitfile_parameters_of_any_shape_are_kept(registry, tmp_path, params, expected):
    files = {"model.gguf": b"GGUF\x03\x00"}
    ref = kitops_modelkit(registry, {"name": "m", "path": "model.gguf", "parameters": params}, files)
    cfg = artifacts.inspect(ref, options=registry.options)["config"]
    assert cfg["hyperParameters"] == expected
    out = tmp_path / "out"
    artifacts.fetch(ref, out, options=registry.options)
    assert config.load(out).format == "GGUF"  # no Kitfile format: inferred from the files


# -- hostile foreign artifacts ---------------------------------------------------------------------


def test_a_zstd_layer_escaping_the_destination_is_refused(registry, tmp_path):
    evil = oci.Blob.from_bytes("application/vnd.cncf.model.weight.v1.tar+zstd",
                               tar_bytes({"../../escaped.bin": b"x"}, compress="zstd"),
                               {oci.ANNOTATION_FILEPATH: "model.bin"})
    cfg = oci.Blob.from_bytes(oci.MODELPACK_CONFIG, json.dumps(
        {"descriptor": {"name": "x"}, "config": {}, "modelfs": {"type": "layers", "diffIds": [evil.digest]}}).encode())
    ref = push_artifact(registry, cfg, [evil], artifact_type=oci.MODELPACK_ARTIFACT)
    with pytest.raises(BundleError, match="outside the destination"):
        artifacts.fetch(ref, tmp_path / "d" / "out", options=registry.options)
    assert list((tmp_path / "d").iterdir()) == [] and not list(tmp_path.rglob("escaped.bin"))


def test_an_oras_title_escaping_the_destination_is_refused(registry, tmp_path):
    layer = oci.Blob.from_bytes("application/vnd.oci.image.layer.v1.tar", b"x",
                                {oci.ANNOTATION_TITLE: "../escaped.bin"})
    ref = push_artifact(registry, oci.Blob.from_bytes(oci.EMPTY_CONFIG, b"{}"), [layer],
                        artifact_type="application/vnd.example.model")
    with pytest.raises(BundleError, match="outside the destination"):
        artifacts.fetch(ref, tmp_path / "d" / "out", options=registry.options)
    assert list((tmp_path / "d").iterdir()) == [] and not list(tmp_path.rglob("escaped.bin"))


def test_a_kitfile_directory_packs_with_its_model_format_and_parameters(registry, tmp_path):
    src = tmp_path / "kit"
    src.mkdir()
    (src / "Kitfile").write_text("manifestVersion: 1.0\npackage: {name: iris, authors: [Ada]}\n"
                                 "model: {name: iris, path: model.bin, format: onnx, parameters: [1, 2]}\n")
    (src / "model.bin").write_bytes(b"\x08\x07onnx")
    manifest, _, res = published(registry, src, "modelpack", tmp_path)
    cfg = json.loads(manifest["annotations"][oci.ANNOTATION_CONFIG])
    assert res["format"] == cfg["format"] == "ONNX" and cfg["author"] == "Ada"
    assert cfg["hyperParameters"] == [{"name": "parameters", "value": "[1, 2]"}]
