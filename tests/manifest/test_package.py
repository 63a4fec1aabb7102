"""The Teams app package: what `make package` writes, and what it refuses to write."""

from __future__ import annotations

import colorsys
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from PIL import Image

from dialogs import COMMANDS, CommandName, ParsedCommand, Role, parse_command
from manifest import icons
from manifest.build import (
    MANIFEST_DIR,
    PLACEHOLDER_HOST,
    PLACEHOLDER_ID,
    SCHEMA_PATH,
    ManifestInvalid,
    PackageConfigError,
    PackageValues,
    build_package,
    load_values,
    main,
    render_manifest,
    write_package,
)

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_SCHEMA = ROOT.parent / "shared" / "reference" / "teams-manifest-v1.24.schema.json"

BOT_ID = "6d1f3a2e-4b5c-4d7e-8f90-a1b2c3d4e5f6"
TEAMS_APP_ID = "0b7e5c41-9a3d-4f2e-b8c6-1d2e3f405162"
HOST = "phonedesk.contoso.com"

# Names pydantic-settings would pick up for the package's values, in any letter case.
_PACKAGE_VARIABLES = {"microsoftappid", "phonedesk_app_id", "app_id", "phonedesk_public_host"}


@pytest.fixture
def values() -> PackageValues:
    return PackageValues(
        bot_id=BOT_ID,
        manifest_id=TEAMS_APP_ID,
        version="1.4.2",
        public_host=HOST,
        developer_name="Contoso IT",
        website_url="https://intranet.contoso.com/phonedesk",
        privacy_url="https://intranet.contoso.com/privacy",
        terms_url="https://intranet.contoso.com/terms",
    )


@pytest.fixture
def package(tmp_path: Path, values: PackageValues) -> Path:
    return build_package(values, tmp_path / "appPackage.zip")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No package value from the machine running the tests, nor from a .env file."""
    for name in list(os.environ):
        folded = name.lower()
        if folded in _PACKAGE_VARIABLES or folded.startswith("phonedesk_manifest_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def official_schema() -> dict[str, Any]:
    path = REFERENCE_SCHEMA if REFERENCE_SCHEMA.is_file() else SCHEMA_PATH
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(schema, dict)
    return schema


def schema_violations(manifest: dict[str, Any]) -> list[str]:
    schema = official_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(manifest)]


def read_manifest(package: Path) -> dict[str, Any]:
    with zipfile.ZipFile(package) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert isinstance(manifest, dict)
    return manifest


def read_icon(package: Path, name: str) -> Image.Image:
    with zipfile.ZipFile(package) as archive:
        data = archive.read(name)
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


def pixels(image: Image.Image) -> list[tuple[int, ...]]:
    rgba = image.convert("RGBA")
    found = []
    for y in range(rgba.height):
        for x in range(rgba.width):
            pixel = rgba.getpixel((x, y))
            assert isinstance(pixel, tuple)
            found.append(tuple(int(channel) for channel in pixel))
    return found


def commands(manifest: dict[str, Any]) -> list[tuple[list[str], dict[str, str]]]:
    return [
        (command_list["scopes"], command)
        for command_list in manifest["bots"][0]["commandLists"]
        for command in command_list["commands"]
    ]


# --- what the package holds


def test_the_package_holds_exactly_the_manifest_and_the_two_icons(package: Path) -> None:
    with zipfile.ZipFile(package) as archive:
        assert sorted(archive.namelist()) == ["color.png", "manifest.json", "outline.png"]
    manifest = read_manifest(package)
    assert manifest["icons"] == {"color": "color.png", "outline": "outline.png"}


def test_the_manifest_validates_against_the_official_schema(package: Path) -> None:
    assert schema_violations(read_manifest(package)) == []


def test_the_schema_the_build_uses_is_the_official_one() -> None:
    if not REFERENCE_SCHEMA.is_file():
        pytest.skip(f"no reference schema at {REFERENCE_SCHEMA} on this machine")
    assert SCHEMA_PATH.read_bytes() == REFERENCE_SCHEMA.read_bytes()


def test_ids_domain_and_developer_come_from_the_values(package: Path) -> None:
    manifest = read_manifest(package)
    assert manifest["manifestVersion"] == "1.24"
    assert manifest["id"] == TEAMS_APP_ID
    assert manifest["version"] == "1.4.2"
    assert manifest["validDomains"] == [HOST]
    assert manifest["developer"] == {
        "name": "Contoso IT",
        "websiteUrl": "https://intranet.contoso.com/phonedesk",
        "privacyUrl": "https://intranet.contoso.com/privacy",
        "termsOfUseUrl": "https://intranet.contoso.com/terms",
    }
    (bot,) = manifest["bots"]
    assert bot["botId"] == BOT_ID
    assert set(bot["scopes"]) == {"personal", "team", "groupChat"}


def test_the_same_values_build_the_same_bytes(tmp_path: Path, values: PackageValues) -> None:
    first = build_package(values, tmp_path / "one.zip")
    second = build_package(values, tmp_path / "two.zip")
    assert first.read_bytes() == second.read_bytes()


# --- icons


def test_the_colour_icon_is_a_192_pixel_full_colour_png(package: Path) -> None:
    image = read_icon(package, "color.png")
    assert image.size == (192, 192)
    hues = {
        round(colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)[0] * 12) % 12
        for r, g, b, _ in pixels(image)
        if max(r, g, b) - min(r, g, b) > 64
    }
    assert len(hues) >= 2, "the colour icon should not be monochrome"


def test_the_outline_icon_is_32_pixels_white_on_transparent(package: Path) -> None:
    image = read_icon(package, "outline.png")
    assert image.size == (32, 32)
    assert image.mode in {"RGBA", "LA"}
    found = pixels(image)
    assert [p for p in found if p[3] > 0 and p[:3] != (255, 255, 255)] == []
    corners = [found[0], found[31], found[-32], found[-1]]
    assert all(p[3] == 0 for p in corners), "the background must be transparent"
    assert any(p[3] == 255 for p in found), "the glyph must be visible"


def test_the_accent_colour_is_the_colour_icons_background(package: Path) -> None:
    manifest = read_manifest(package)
    assert manifest["accentColor"] == icons.ACCENT
    corner = pixels(read_icon(package, "color.png"))[0]
    assert "#{:02X}{:02X}{:02X}".format(*corner[:3]) == icons.ACCENT.upper()


def test_the_committed_icons_are_what_icons_py_draws() -> None:
    # A small tolerance: resampling may differ by a level or two between Pillow versions.
    for name, drawn in (
        (icons.COLOR_FILE, icons.draw_color()),
        (icons.OUTLINE_FILE, icons.draw_outline()),
    ):
        with Image.open(MANIFEST_DIR / name) as committed:
            assert committed.size == drawn.size
            assert committed.mode == drawn.mode
            largest = max(
                abs(a - b)
                for old, new in zip(pixels(committed), pixels(drawn), strict=True)
                for a, b in zip(old, new, strict=True)
            )
            assert largest <= 8, f"{name} is stale: run python -m manifest.icons"


# --- commands


def test_every_listed_command_is_one_the_bot_understands(package: Path) -> None:
    by_name = {command.name.value: command for command in COMMANDS}
    listed = commands(read_manifest(package))
    assert listed
    for _, command in listed:
        title = command["title"]
        known = by_name.get(title)
        assert known is not None, f"{title!r} is not one of the bot's commands"
        role = Role.APPROVER if known.approvers_only else Role.REQUESTER
        parsed = parse_command(title, role)
        # Exactly this command, complete as it stands: clicking it must not need an id.
        assert parsed == ParsedCommand(CommandName(title)), f"{title!r} parses as {parsed!r}"


def test_approver_commands_say_they_are_for_approvers(package: Path) -> None:
    approvers_only = {command.name.value for command in COMMANDS if command.approvers_only}
    for _, command in commands(read_manifest(package)):
        if command["title"] in approvers_only:
            assert command["description"].startswith("Approvers:"), command


def test_each_scope_has_one_command_list_with_help(package: Path) -> None:
    manifest = read_manifest(package)
    lists = manifest["bots"][0]["commandLists"]
    scopes = [scope for command_list in lists for scope in command_list["scopes"]]
    assert sorted(scopes) == sorted(manifest["bots"][0]["scopes"])
    for command_list in lists:
        titles = [command["title"] for command in command_list["commands"]]
        assert "help" in titles
        assert len(titles) == len(set(titles))


# --- refusals


def test_too_many_commands_are_refused_and_no_zip_is_written(
    tmp_path: Path, values: PackageValues
) -> None:
    manifest = render_manifest(values)
    listed = manifest["bots"][0]["commandLists"][0]["commands"]
    listed.extend(dict(listed[0]) for _ in range(13 - len(listed)))
    output = tmp_path / "out" / "appPackage.zip"

    with pytest.raises(ManifestInvalid) as refused:
        write_package(manifest, output)

    assert any(p.startswith("$.bots[0].commandLists[0].commands:") for p in refused.value.problems)
    assert "$.bots[0].commandLists[0].commands" in str(refused.value)
    assert not output.parent.exists()


def test_a_bad_bot_id_is_refused_with_its_json_path(tmp_path: Path, values: PackageValues) -> None:
    manifest = render_manifest(values)
    manifest["bots"][0]["botId"] = "not-a-guid"
    manifest["id"] = "also-not-a-guid"

    with pytest.raises(ManifestInvalid) as refused:
        write_package(manifest, tmp_path / "appPackage.zip")

    paths = {problem.split(":", 1)[0] for problem in refused.value.problems}
    assert paths == {"$.bots[0].botId", "$.id"}
    assert list(tmp_path.iterdir()) == []


def test_a_refused_build_leaves_the_previous_package_intact(
    package: Path, values: PackageValues
) -> None:
    before = package.read_bytes()
    manifest = render_manifest(values)
    del manifest["bots"][0]["scopes"]

    with pytest.raises(ManifestInvalid):
        write_package(manifest, package)

    assert package.read_bytes() == before
    assert sorted(p.name for p in package.parent.iterdir()) == [package.name]


def test_an_outline_icon_with_colour_is_refused(tmp_path: Path, values: PackageValues) -> None:
    icon_dir = tmp_path / "icons"
    icon_dir.mkdir()
    (icon_dir / "color.png").write_bytes((MANIFEST_DIR / "color.png").read_bytes())
    Image.new("RGBA", (32, 32), (200, 0, 0, 255)).save(icon_dir / "outline.png")

    with pytest.raises(ManifestInvalid) as refused:
        write_package(render_manifest(values), tmp_path / "appPackage.zip", icon_dir=icon_dir)

    assert [p.split(":", 1)[0] for p in refused.value.problems] == ["$.icons.outline"] * 2
    assert not (tmp_path / "appPackage.zip").exists()


def test_a_missing_or_unreadable_icon_is_refused(tmp_path: Path, values: PackageValues) -> None:
    icon_dir = tmp_path / "icons"
    icon_dir.mkdir()
    (icon_dir / "outline.png").write_text("not a picture")

    with pytest.raises(ManifestInvalid) as refused:
        write_package(render_manifest(values), tmp_path / "appPackage.zip", icon_dir=icon_dir)

    assert [p.split(":", 1)[0] for p in refused.value.problems] == [
        "$.icons.color",
        "$.icons.outline",
    ]
    assert all("cannot be read as an image" in p for p in refused.value.problems)
    assert not (tmp_path / "appPackage.zip").exists()


# --- values from the environment


@pytest.mark.usefixtures("clean_env")
def test_a_missing_app_id_stops_the_build_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(PackageConfigError) as refused:
        load_values(env_file=None)

    message = str(refused.value)
    assert "MicrosoftAppId is not set" in message
    assert "PHONEDESK_PUBLIC_HOST is not set" in message
    assert "--placeholder-ids" in message


@pytest.mark.usefixtures("clean_env")
def test_make_package_without_an_app_id_exits_with_the_message_and_no_zip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "appPackage.zip"

    assert main(["--output", str(output)]) == 2

    assert "MicrosoftAppId is not set" in capsys.readouterr().err
    assert not output.exists()


@pytest.mark.usefixtures("clean_env")
def test_placeholder_ids_stand_in_only_while_the_app_id_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "appPackage.zip"

    assert main(["--output", str(output), "--placeholder-ids"]) == 0

    manifest = read_manifest(output)
    assert manifest["id"] == manifest["bots"][0]["botId"] == PLACEHOLDER_ID
    assert manifest["validDomains"] == [PLACEHOLDER_HOST]
    assert schema_violations(manifest) == []

    monkeypatch.setenv("MicrosoftAppId", BOT_ID)
    output.unlink()
    assert main(["--output", str(output), "--placeholder-ids"]) == 2
    assert "PHONEDESK_PUBLIC_HOST is not set" in capsys.readouterr().err
    assert not output.exists()


@pytest.mark.usefixtures("clean_env")
def test_values_come_from_the_environment_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MicrosoftAppId", BOT_ID)
    monkeypatch.setenv("PHONEDESK_MANIFEST_ID", TEAMS_APP_ID)
    monkeypatch.setenv("PHONEDESK_PUBLIC_HOST", "old.contoso.com")
    monkeypatch.setenv("PHONEDESK_MANIFEST_PRIVACY_URL", "https://contoso.com/privacy")

    loaded = load_values(env_file=None, public_host=HOST, version="2.0.0")

    assert loaded.placeholders == ()
    assert loaded.values == PackageValues(
        bot_id=BOT_ID,
        manifest_id=TEAMS_APP_ID,
        version="2.0.0",
        public_host=HOST,
        developer_name="PhoneDesk",
        website_url=f"https://{HOST}/",
        privacy_url="https://contoso.com/privacy",
        terms_url=f"https://{HOST}/",
    )


@pytest.mark.usefixtures("clean_env")
def test_the_teams_app_id_defaults_to_the_bot_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MicrosoftAppId", BOT_ID)
    monkeypatch.setenv("PHONEDESK_PUBLIC_HOST", HOST)

    assert load_values(env_file=None).values.manifest_id == BOT_ID


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("MicrosoftAppId", "my-bot", "MicrosoftAppId: 'my-bot' is not a GUID"),
        ("PHONEDESK_MANIFEST_ID", "42", "PHONEDESK_MANIFEST_ID: '42' is not a GUID"),
        ("PHONEDESK_PUBLIC_HOST", "https://x.contoso.com/api/messages", "PHONEDESK_PUBLIC_HOST:"),
        ("PHONEDESK_MANIFEST_VERSION", "1.0", "PHONEDESK_MANIFEST_VERSION: '1.0'"),
        ("PHONEDESK_MANIFEST_TERMS_URL", "http://contoso.com/t", "PHONEDESK_MANIFEST_TERMS_URL:"),
    ],
)
def test_a_malformed_value_is_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, complaint: str
) -> None:
    monkeypatch.setenv("MicrosoftAppId", BOT_ID)
    monkeypatch.setenv("PHONEDESK_PUBLIC_HOST", HOST)
    monkeypatch.setenv(variable, value)

    with pytest.raises(PackageConfigError) as refused:
        load_values(env_file=None)

    assert complaint in str(refused.value)
    assert "--placeholder-ids" not in str(refused.value)
