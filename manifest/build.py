"""Builds the Teams app package, appPackage.zip: manifest.json, color.png and outline.png.

The manifest is ``manifest.template.json`` with its ``${name}`` placeholders filled from
the environment (or a ``.env`` file, read the way the bot reads its settings), where a
command-line flag wins over a variable:

================  ==================================  =====================================
placeholder       variable (flag)                     default
================  ==================================  =====================================
bot_id            MicrosoftAppId (--app-id)           required
manifest_id       PHONEDESK_MANIFEST_ID               the bot's app id
                  (--manifest-id)
public_host       PHONEDESK_PUBLIC_HOST               required
                  (--public-host)
version           PHONEDESK_MANIFEST_VERSION          the installed phonedesk version
                  (--app-version)
developer_name    PHONEDESK_MANIFEST_DEVELOPER_NAME   PhoneDesk
website_url       PHONEDESK_MANIFEST_WEBSITE_URL      https://{public_host}/
privacy_url       PHONEDESK_MANIFEST_PRIVACY_URL      the website URL
terms_url         PHONEDESK_MANIFEST_TERMS_URL        the website URL
================  ==================================  =====================================

``--placeholder-ids`` builds a package for validation only on a checkout with no bot
registration: while MicrosoftAppId is unset, the ids and the host get obviously fake
values and the build says so. Once MicrosoftAppId is set it changes nothing, so a package
never mixes real and fake values.

A manifest that does not validate against the Teams schema v1.24 (the copy under
``schema/``), or icons Teams would refuse, never become a package, and a failed build
leaves no partial zip behind.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import string
import sys
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any, Final

import jsonschema
from PIL import Image
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from provisioning.settings import Settings

log = logging.getLogger(__name__)

MANIFEST_DIR: Final = Path(__file__).resolve().parent
TEMPLATE_PATH: Final = MANIFEST_DIR / "manifest.template.json"
SCHEMA_PATH: Final = MANIFEST_DIR / "schema" / "teams-manifest-v1.24.schema.json"
MANIFEST_FILE: Final = "manifest.json"
DEFAULT_OUTPUT: Final = Path("appPackage.zip")

PLACEHOLDER_ID: Final = "00000000-0000-0000-0000-000000000000"
# .invalid is reserved (RFC 2606): it can never resolve, so it can never reach anything.
PLACEHOLDER_HOST: Final = "phonedesk.invalid"

COLOR_ICON_SIZE: Final = (192, 192)
OUTLINE_ICON_SIZE: Final = (32, 32)
WHITE: Final = (255, 255, 255)

_GUID: Final = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_SEMVER: Final = re.compile(r"^(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)$")
_LABEL: Final = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST: Final = re.compile(rf"^(?:{_LABEL}\.)*{_LABEL}$")
# A fixed timestamp makes the same inputs produce the same zip, byte for byte.
_ZIP_DATE: Final = (1980, 1, 1, 0, 0, 0)
_MAX_MESSAGE: Final = 300


class ManifestError(Exception):
    """The package cannot be built; the message says why and what to change."""


class PackageConfigError(ManifestError):
    """A value the manifest needs is missing or malformed; the message names its variable."""


class ManifestInvalid(ManifestError):
    """The manifest or an icon would be refused by Teams."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(
            "refusing to build a Teams app package that breaks the Teams manifest schema v1.24 "
            "or Teams' icon rules:\n" + "\n".join(f"  {problem}" for problem in self.problems)
        )


class PackageSettings(BaseSettings):
    """The values the manifest needs, read like the bot's own Settings."""

    model_config = SettingsConfigDict(
        env_prefix="PHONEDESK_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # The same variable names as the bot's identity in Settings, so one .env serves both.
    app_id: str | None = Field(
        None, validation_alias=Settings.model_fields["app_id"].validation_alias
    )
    manifest_id: str | None = None
    public_host: str | None = None
    manifest_version: str | None = None
    manifest_developer_name: str = "PhoneDesk"
    manifest_website_url: str | None = None
    manifest_privacy_url: str | None = None
    manifest_terms_url: str | None = None


@dataclass(frozen=True)
class PackageValues:
    """What fills the template's placeholders (field names are the placeholder names)."""

    bot_id: str
    manifest_id: str
    version: str
    public_host: str
    developer_name: str
    website_url: str
    privacy_url: str
    terms_url: str

    def template_fields(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class LoadedValues:
    values: PackageValues
    placeholders: tuple[str, ...]
    """The variables that were unset and got placeholder values (--placeholder-ids)."""


def _given(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


def _phonedesk_version() -> str | None:
    try:
        return installed_version("phonedesk")
    except PackageNotFoundError:
        return None


def load_values(
    *,
    placeholder_ids: bool = False,
    env_file: Path | None = Path(".env"),
    app_id: str | None = None,
    manifest_id: str | None = None,
    public_host: str | None = None,
    version: str | None = None,
) -> LoadedValues:
    """The template's values from the environment, with the keyword arguments winning.

    Raises PackageConfigError listing every missing or malformed value by its variable.
    """
    flags = {
        "app_id": app_id,
        "manifest_id": manifest_id,
        "public_host": public_host,
        "manifest_version": version,
    }
    given: dict[str, Any] = {name: value for name, value in flags.items() if value is not None}
    settings = PackageSettings(_env_file=env_file, **given)
    problems: list[str] = []
    placeholders: list[str] = []

    bot_id = _given(settings.app_id)
    use_placeholders = placeholder_ids and bot_id is None
    if bot_id is None:
        if use_placeholders:
            bot_id = PLACEHOLDER_ID
            placeholders.append("MicrosoftAppId")
        else:
            problems.append(
                "MicrosoftAppId is not set: the Azure Bot's Microsoft App ID, which Teams "
                "sends the bot's messages to (bots[0].botId)"
            )
    elif not _GUID.match(bot_id):
        problems.append(f"MicrosoftAppId: {bot_id!r} is not a GUID")

    app_guid = _given(settings.manifest_id) or bot_id or ""
    if _given(settings.manifest_id) is not None and not _GUID.match(app_guid):
        problems.append(f"PHONEDESK_MANIFEST_ID: {app_guid!r} is not a GUID")

    host = _given(settings.public_host)
    if host is None:
        if use_placeholders:
            host = PLACEHOLDER_HOST
            placeholders.append("PHONEDESK_PUBLIC_HOST")
        else:
            problems.append(
                "PHONEDESK_PUBLIC_HOST is not set: the host name Teams reaches the bot at, as "
                "in https://HOST/api/messages (validDomains)"
            )
            host = ""
    elif not _HOST.match(host):
        problems.append(
            f"PHONEDESK_PUBLIC_HOST: {host!r} is not a host name; give the name alone, "
            "without scheme, port or path, e.g. phonedesk.contoso.com"
        )

    app_version = _given(settings.manifest_version) or _phonedesk_version()
    if app_version is None:
        problems.append(
            "PHONEDESK_MANIFEST_VERSION is not set and the phonedesk package is not installed "
            "to take its version from"
        )
    elif not _SEMVER.match(app_version):
        problems.append(
            f"PHONEDESK_MANIFEST_VERSION: {app_version!r} is not MAJOR.MINOR.PATCH (e.g. 1.0.3)"
        )

    website = _given(settings.manifest_website_url) or f"https://{host}/"
    urls = {
        "PHONEDESK_MANIFEST_WEBSITE_URL": website,
        "PHONEDESK_MANIFEST_PRIVACY_URL": _given(settings.manifest_privacy_url) or website,
        "PHONEDESK_MANIFEST_TERMS_URL": _given(settings.manifest_terms_url) or website,
    }
    if host:
        for variable, url in urls.items():
            if not url.lower().startswith("https://"):
                problems.append(f"{variable}: {url!r} is not an https:// URL")

    if problems:
        hint = ""
        if _given(settings.app_id) is None and not placeholder_ids:
            hint = (
                "\nTo check the package without a bot registration, pass --placeholder-ids "
                "(the package then cannot reach any bot)."
            )
        raise PackageConfigError(
            "cannot build the Teams app package:\n"
            + "\n".join(f"  {problem}" for problem in problems)
            + hint
        )
    assert bot_id is not None
    assert app_version is not None
    values = PackageValues(
        bot_id=bot_id,
        manifest_id=app_guid,
        version=app_version,
        public_host=host,
        developer_name=settings.manifest_developer_name,
        website_url=urls["PHONEDESK_MANIFEST_WEBSITE_URL"],
        privacy_url=urls["PHONEDESK_MANIFEST_PRIVACY_URL"],
        terms_url=urls["PHONEDESK_MANIFEST_TERMS_URL"],
    )
    return LoadedValues(values=values, placeholders=tuple(placeholders))


def render_manifest(values: PackageValues, template: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template with every ``${name}`` in its string values filled in.

    Filling parsed values rather than the raw text means no value can break the JSON.
    """
    document = json.loads(template.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ManifestError(f"{template} does not hold a JSON object")
    filled = _fill(document, values.template_fields(), template)
    assert isinstance(filled, dict)
    return filled


def _fill(node: Any, fields: Mapping[str, str], template: Path) -> Any:
    if isinstance(node, str):
        try:
            return string.Template(node).substitute(fields)
        except KeyError as exc:
            raise ManifestError(
                f"{template} uses ${{{exc.args[0]}}}, which the builder does not fill; "
                f"it fills {', '.join(sorted(fields))}"
            ) from None
        except ValueError as exc:
            raise ManifestError(f"{template}: a malformed placeholder in {node!r}: {exc}") from None
    if isinstance(node, list):
        return [_fill(item, fields, template) for item in node]
    if isinstance(node, dict):
        return {key: _fill(value, fields, template) for key, value in node.items()}
    return node


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(schema, dict)
    return schema


def schema_errors(manifest: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Every way ``manifest`` breaks ``schema``, each as ``<JSON path>: <message>``."""
    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema)
    errors = sorted(validator.iter_errors(manifest), key=lambda e: [str(p) for p in e.path])
    return [f"{error.json_path}: {_shorten(error.message)}" for error in errors]


def _shorten(message: str) -> str:
    # A "too long" error quotes the whole offending list; the path already says where.
    if len(message) <= _MAX_MESSAGE:
        return message
    return message[: _MAX_MESSAGE - 1] + "…"


def icon_problems(color: Path, outline: Path) -> list[str]:
    """What Teams would refuse about the two icons (sizes, and the outline's white-on-clear)."""
    problems: list[str] = []
    for role, path, size in (
        ("color", color, COLOR_ICON_SIZE),
        ("outline", outline, OUTLINE_ICON_SIZE),
    ):
        where = f"$.icons.{role}: {path.name}"
        try:
            with Image.open(path) as image:
                image.load()
                found_format, found_size = image.format, image.size
                rgba = image.convert("RGBA")
        except OSError as exc:  # missing, unreadable, or not an image at all
            problems.append(f"{where} cannot be read as an image ({exc})")
            continue
        if found_format != "PNG":
            problems.append(f"{where} is {found_format}, not a PNG")
        if found_size != size:
            problems.append(f"{where} is {_size(found_size)}, not {_size(size)}")
        if role == "outline":
            problems += _outline_problems(where, rgba)
    return problems


def _outline_problems(where: str, rgba: Image.Image) -> list[str]:
    problems: list[str] = []
    alphas_and_colours = [
        (pixel[3], pixel[:3])
        for y in range(rgba.height)
        for x in range(rgba.width)
        if isinstance(pixel := rgba.getpixel((x, y)), tuple)
    ]
    if not any(alpha == 0 for alpha, _ in alphas_and_colours):
        problems.append(f"{where} has no transparent background")
    coloured = sum(1 for alpha, rgb in alphas_and_colours if alpha > 0 and rgb != WHITE)
    if coloured:
        problems.append(
            f"{where} must be white on transparent; {coloured} visible pixel(s) are not white"
        )
    return problems


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def write_package(
    manifest: Mapping[str, Any],
    output: Path,
    *,
    icon_dir: Path = MANIFEST_DIR,
    schema: Mapping[str, Any] | None = None,
) -> Path:
    """Validate ``manifest`` and its icons, then write the zip atomically to ``output``.

    Raises ManifestInvalid, listing every problem with its JSON path, before anything is
    written; an existing file at ``output`` is only ever replaced by a complete package.
    """
    problems = schema_errors(manifest, schema if schema is not None else load_schema())
    icons = manifest.get("icons")
    if not problems and isinstance(icons, Mapping):
        names = {role: str(icons[role]) for role in ("color", "outline")}
        for role, name in names.items():
            if Path(name).name != name or name == MANIFEST_FILE:
                problems.append(f"$.icons.{role}: {name!r} must be a file name at the zip root")
        if not problems:
            problems += icon_problems(icon_dir / names["color"], icon_dir / names["outline"])
    if problems:
        raise ManifestInvalid(problems)
    assert isinstance(icons, Mapping)

    entries = [
        (MANIFEST_FILE, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode())
    ]
    entries += [
        (str(icons[role]), (icon_dir / str(icons[role])).read_bytes())
        for role in ("color", "outline")
    ]
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(
        prefix=f".{output.name}.", suffix=".partial", dir=output.parent
    )
    try:
        with os.fdopen(handle, "wb") as raw, zipfile.ZipFile(raw, "w") as archive:
            for name, data in entries:
                info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, data)
        # mkstemp creates the file private to its owner; a package is not a secret.
        os.chmod(partial, 0o644)
        os.replace(partial, output)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return output


def build_package(values: PackageValues, output: Path = DEFAULT_OUTPUT) -> Path:
    return write_package(render_manifest(values), output)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m manifest.build",
        description="Build the Teams app package (manifest.json, color.png, outline.png) "
        "from the environment; see the module docstring for the variables.",
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=DEFAULT_OUTPUT, help="default: appPackage.zip"
    )
    parser.add_argument("--app-id", help="the Azure Bot's Microsoft App ID (MicrosoftAppId)")
    parser.add_argument(
        "--manifest-id", help="the Teams app id (PHONEDESK_MANIFEST_ID; default: the app id)"
    )
    parser.add_argument(
        "--public-host", help="host name Teams reaches the bot at (PHONEDESK_PUBLIC_HOST)"
    )
    parser.add_argument(
        "--app-version", help="the app's MAJOR.MINOR.PATCH version (PHONEDESK_MANIFEST_VERSION)"
    )
    parser.add_argument(
        "--placeholder-ids",
        action="store_true",
        help="while MicrosoftAppId is unset, use placeholder ids and host: the package "
        "validates but cannot reach a bot",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        loaded = load_values(
            placeholder_ids=args.placeholder_ids,
            app_id=args.app_id,
            manifest_id=args.manifest_id,
            public_host=args.public_host,
            version=args.app_version,
        )
        path = build_package(loaded.values, args.output)
    except ManifestError as exc:
        sys.stderr.write(f"manifest.build: {exc}\n")
        return 2
    values = loaded.values
    log.info(
        "wrote %s: PhoneDesk %s, Teams app id %s, bot id %s, domain %s",
        path,
        values.version,
        values.manifest_id,
        values.bot_id,
        values.public_host,
    )
    if loaded.placeholders:
        log.warning(
            "%s unset: the package carries placeholder ids and host (%s, %s). It validates, "
            "but Teams cannot reach a bot with it; set them to build a package to upload.",
            " and ".join(loaded.placeholders),
            PLACEHOLDER_ID,
            PLACEHOLDER_HOST,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
