"""InvokeAI 4.x-6.x roots: the main models listed in ROOT/<db_dir>/invokeai.db, read-only.

From 4.0 InvokeAI keeps its models in a SQLite database, table `models`: one row per model,
its whole record in the JSON column `config` (invoke-ai/InvokeAI
invokeai/app/services/model_records/model_records_sql.py at ae4bc060; the migrations add
generated columns such as `base`, `type`, `name`, `path` from that JSON, which is why only
`config` is read here). The fields used: `type` ("main" for pipelines), `base` ("sd-1",
"sd-2", "sdxl", or "sdxl-refiner", "sd-3", "flux", ... which are listed as unsupported),
`format` ("diffusers" or "checkpoint"), `name`, `path` (relative to models_dir, or absolute),
`variant` ("normal", "inpaint", "depth") and `prediction_type` ("epsilon", "v_prediction").

The database belongs to InvokeAI and is in WAL mode while InvokeAI runs: it is opened with a
`file:...?mode=ro` URI (plus `immutable=1` when no -wal file shows a writer), never written,
never locked for writing, and no -wal/-shm file is left behind by ti-tui. `db_dir` and `models_dir`
come from ROOT/invokeai.yaml when it sets them (4.x flat keys; 3.x's nested
`InvokeAI: Paths:` form is read too), else `databases` and `models` under the root.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import ModelError

DB_NAME = "invokeai.db"
SUPPORTED_BASES = {"sd-1": "SD1", "sd-2": "SD2", "sdxl": "SDXL"}
OTHER_BASES = {"sdxl-refiner": "an SDXL refiner", "sd-3": "an SD3 model",
               "flux": "a Flux model", "flux2": "a Flux 2 model", "cogview4": "a CogView4 model",
               "sd-3.5": "an SD3.5 model"}


@dataclass(frozen=True)
class DbModel:
    """One main model of the database."""

    name: str
    """The model's name in InvokeAI (the file or folder stem when it has none)."""
    path: Path
    """The model file or folder, absolute (relative rows are under ROOT/models)."""
    base: str
    """InvokeAI's base type: "sd-1", "sd-2", "sdxl", "sdxl-refiner", "flux"..."""
    format: str
    """InvokeAI's storage format, e.g. "diffusers" or "checkpoint"."""
    prediction_type: str | None
    """"epsilon" or "v_prediction" when the row says, else None."""
    variant: str | None
    """InvokeAI's variant ("normal", "inpaint"...), or None."""
    key: str
    """The row's key (its `key` field, else its id)."""

    @property
    def problem(self) -> str | None:
        """Why ti-tui cannot train on it ("an SD3 model"...), or None."""
        if self.base not in SUPPORTED_BASES:
            return OTHER_BASES.get(self.base, f"a {self.base} model")
        if self.variant not in (None, "normal"):
            return f"{'an' if self.variant[0] in 'aeiou' else 'a'} {self.variant} model"
        if self.format not in ("diffusers", "checkpoint"):
            return f"a model in InvokeAI's {self.format} format"
        return None


def _settings(root: Path) -> dict:
    """The path settings of ROOT/invokeai.yaml ({} when absent or unreadable)."""
    import yaml

    try:
        data = yaml.safe_load((root / "invokeai.yaml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    if not isinstance(data, dict):
        return {}
    nested = data.get("InvokeAI", {})
    paths = nested.get("Paths", {}) if isinstance(nested, dict) else {}
    flat = {k: v for k, v in data.items() if isinstance(v, str)}
    return {**(paths if isinstance(paths, dict) else {}), **flat}


def _under_root(root: Path, value: str | None, default: str) -> Path:
    path = Path(value or default).expanduser()
    return path if path.is_absolute() else root / path


def database_path(root: Path) -> Path:
    """ROOT/<db_dir>/invokeai.db (it may not exist)."""
    root = Path(root).expanduser()
    return _under_root(root, _settings(root).get("db_dir"), "databases") / DB_NAME


def models_dir(root: Path) -> Path:
    """ROOT/<models_dir>: what relative model paths in the database are relative to."""
    root = Path(root).expanduser()
    return _under_root(root, _settings(root).get("models_dir"), "models")


def read_main_models(root: Path) -> list[DbModel]:
    """The main models of an InvokeAI 4+ root's database; [] when the root has none.

    Raises ModelError (one sentence) when the database exists but cannot be read.
    """
    root = Path(root).expanduser()
    db = database_path(root)
    if not db.is_file():
        return []
    # mode=ro never writes the database, but a reader of a WAL database creates its -wal and
    # -shm files when they are missing. With no -wal file no InvokeAI is writing, so the file
    # is opened as immutable, which creates nothing; otherwise those files exist already.
    wal = db.with_name(db.name + "-wal")
    query = "?mode=ro" if wal.exists() else "?mode=ro&immutable=1"
    uri = "file:" + urllib.parse.quote(str(db.resolve())) + query
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=5)
        try:
            rows = connection.execute("SELECT id, config FROM models").fetchall()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise ModelError(f"Cannot read InvokeAI's model database {db} ({exc}); check the "
                         "file, or pass --model a model folder or file.", field="model") from None
    base_dir = models_dir(root)
    found = []
    for key, text in rows:
        try:
            config = json.loads(text)
        except (TypeError, json.JSONDecodeError):
            continue  # a row another InvokeAI version wrote differently: not ours to judge
        if not isinstance(config, dict) or config.get("type") != "main" or not config.get("path"):
            continue
        path = Path(str(config["path"])).expanduser()
        found.append(DbModel(
            name=str(config.get("name") or path.stem), path=path if path.is_absolute()
            else base_dir / path, base=str(config.get("base", "")),
            format=str(config.get("format", "")),
            prediction_type=config.get("prediction_type") or None,
            variant=config.get("variant") or None, key=str(config.get("key") or key)))
    return found
