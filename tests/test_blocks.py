"""Block types, validation, masking and the encryption of block secrets."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from push_pools.blocks import (
    MASK,
    SecretBox,
    block_types,
    get_block_type,
    mask,
    mask_in_text,
    parse_field_assignments,
    secret_strings,
    split_secret_fields,
    validate_block_data,
)
from push_pools.errors import InvalidInput

AWS = get_block_type("aws-credentials")
GCP = get_block_type("gcp-credentials")
SECRET = get_block_type("secret")
JSON = get_block_type("json")

GCP_KEY = {
    "type": "service_account",
    "project_id": "demo-project",
    "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
    "-----END PRIVATE KEY-----\n",
    "client_email": "runner@demo-project.iam.gserviceaccount.com",
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PUSH_POOLS_HOME", str(tmp_path))
    monkeypatch.delenv("PUSH_POOLS_ENCRYPTION_KEY", raising=False)
    return tmp_path


# --- block types -------------------------------------------------------------------------------


def test_shipped_block_types_and_their_secret_fields() -> None:
    secret_fields = {t.slug: {f.name for f in t.fields if f.secret} for t in block_types()}
    assert secret_fields == {
        "aws-credentials": {"aws_secret_access_key", "aws_session_token"},
        "gcp-credentials": {"service_account_info"},
        "azure-credentials": {"client_secret"},
        "secret": {"value"},
        "json": set(),
    }
    assert all(t.description and all(f.description for f in t.fields) for t in block_types())


def test_unknown_block_type_lists_the_choices() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        get_block_type("aws-creds")
    message = excinfo.value.message
    assert "unknown block type 'aws-creds'" in message
    assert "choose one of: aws-credentials, gcp-credentials" in message


# --- parse_field_assignments -------------------------------------------------------------------


def test_parse_assignments_splits_on_first_equals_only() -> None:
    data = parse_field_assignments(
        AWS, ["aws_secret_access_key=ab=cd==", "region_name=eu-west-1", "profile_name="]
    )
    assert data == {
        "aws_secret_access_key": "ab=cd==",
        "region_name": "eu-west-1",
        "profile_name": "",
    }


def test_parse_assignments_parses_json_fields() -> None:
    data = parse_field_assignments(GCP, [f"service_account_info={json.dumps(GCP_KEY)}"])
    assert data["service_account_info"] == GCP_KEY


def test_parse_assignments_reads_json_from_file_with_at(tmp_path: Path) -> None:
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(GCP_KEY))
    data = parse_field_assignments(GCP, [f"service_account_info=@{key_file}", "project=p"])
    assert data == {"service_account_info": GCP_KEY, "project": "p"}


def test_parse_assignments_bad_json_names_the_field() -> None:
    with pytest.raises(InvalidInput, match="service_account_info.*not valid JSON"):
        parse_field_assignments(GCP, ["service_account_info={not json"])


def test_parse_assignments_json_must_be_an_object() -> None:
    with pytest.raises(InvalidInput, match="'value'.*JSON object"):
        parse_field_assignments(JSON, ["value=[1, 2]"])


@pytest.mark.parametrize("assignment", ["region_name", "=eu-west-1"])
def test_parse_assignments_needs_field_equals_value(assignment: str) -> None:
    with pytest.raises(InvalidInput, match="expected field=value"):
        parse_field_assignments(AWS, [assignment])


def test_parse_assignments_missing_equals_does_not_echo_a_secret() -> None:
    # `--set hunter2hunter2` (forgot the field name) must not print the would-be secret back.
    with pytest.raises(InvalidInput) as excinfo:
        parse_field_assignments(SECRET, ["=hunter2hunter2"])
    assert "hunter2hunter2" not in excinfo.value.message


def test_parse_assignments_unknown_field_lists_allowed() -> None:
    with pytest.raises(InvalidInput, match="unknown field 'region'.*region_name"):
        parse_field_assignments(AWS, ["region=eu-west-1"])


def test_parse_assignments_rejects_a_field_set_twice() -> None:
    with pytest.raises(InvalidInput, match="more than once"):
        parse_field_assignments(AWS, ["region_name=a", "region_name=b"])


# --- validate_block_data -----------------------------------------------------------------------


def test_validate_accepts_a_profile_only_aws_block_and_drops_nulls() -> None:
    data = validate_block_data(AWS, {"profile_name": "prod", "region_name": None})
    assert data == {"profile_name": "prod"}


def test_validate_unknown_field_names_it_and_lists_allowed() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        validate_block_data(AWS, {"aws_secret_key": "x", "region_name": "eu-west-1"})
    message = excinfo.value.message
    assert "'aws_secret_key'" in message
    assert "allowed fields: aws_access_key_id, aws_secret_access_key" in message


@pytest.mark.parametrize("data", [{}, {"value": None}, {"value": ""}])
def test_validate_missing_required_field(data: dict[str, object]) -> None:
    with pytest.raises(InvalidInput, match="block type 'secret' needs value"):
        validate_block_data(SECRET, data)


def test_validate_wrong_kind_does_not_echo_the_value() -> None:
    with pytest.raises(InvalidInput, match="'client_secret'.*must be a string") as excinfo:
        validate_block_data(get_block_type("azure-credentials"), {"client_secret": 73104})
    assert "73104" not in excinfo.value.message


def test_validate_json_field_accepts_an_object_or_its_text() -> None:
    assert validate_block_data(GCP, {"service_account_info": GCP_KEY}) == {
        "service_account_info": GCP_KEY
    }
    as_text = validate_block_data(GCP, {"service_account_info": json.dumps(GCP_KEY)})
    assert as_text == {"service_account_info": GCP_KEY}
    with pytest.raises(InvalidInput, match="JSON object"):
        validate_block_data(JSON, {"value": 3})


# --- split, mask -------------------------------------------------------------------------------


def test_split_secret_fields() -> None:
    data = {"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "s3cr3t-key"}
    public, secret = split_secret_fields(AWS, data)
    assert public == {"aws_access_key_id": "AKIAEXAMPLE"}
    assert secret == {"aws_secret_access_key": "s3cr3t-key"}


def test_mask_hides_every_secret_field_and_keeps_public_ones() -> None:
    data = {
        "aws_access_key_id": "AKIAEXAMPLE",
        "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG",
        "aws_session_token": "FwoGZXIvYXdzEJr",
        "region_name": "eu-west-1",
    }
    masked = mask(AWS, data)
    assert masked == {
        "aws_access_key_id": "AKIAEXAMPLE",
        "aws_secret_access_key": MASK,
        "aws_session_token": MASK,
        "region_name": "eu-west-1",
    }
    assert data["aws_secret_access_key"] == "wJalrXUtnFEMI/K7MDENG"  # input left untouched
    assert mask(GCP, {"service_account_info": GCP_KEY}) == {"service_account_info": MASK}


def test_mask_treats_undeclared_fields_as_secret() -> None:
    # e.g. a field an older version stored; better hidden than leaked.
    assert mask(AWS, {"legacy_password": "pw-1234"}) == {"legacy_password": MASK}


def test_mask_in_text() -> None:
    line = "auth with token=abcd1234 and abcd1234 again; key ab stays"
    masked = mask_in_text(line, ["abcd1234", "ab", ""])
    assert masked == f"auth with token={MASK} and {MASK} again; key ab stays"
    # A secret containing another one is hidden whole, leaving no tail of it behind.
    assert mask_in_text("pw=longsecret!", ["long", "longsecret!"]) == f"pw={MASK}"
    assert mask_in_text("nothing here", []) == "nothing here"


def test_secret_strings_cover_a_gcp_key_as_it_shows_up_in_logs() -> None:
    found = secret_strings(GCP, {"service_account_info": GCP_KEY, "project": "billing-prj"})
    escaped_log = f"loaded {json.dumps(GCP_KEY)}"
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in mask_in_text(escaped_log, found)
    line_log = "key line: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
    assert mask_in_text(line_log, found) == f"key line: {MASK}"
    # The public project field is not a secret, so it stays readable.
    assert "billing-prj" not in found


# --- SecretBox ---------------------------------------------------------------------------------


def test_encrypt_decrypt_round_trip_and_token_hides_plaintext() -> None:
    box = SecretBox(Fernet.generate_key())
    secret = {"aws_secret_access_key": "wJalrXUtnFEMI-plain", "service_account_info": GCP_KEY}
    token = box.encrypt(secret)
    assert isinstance(token, str)
    assert "wJalrXUtnFEMI-plain" not in token
    assert "aws_secret_access_key" not in token
    assert box.decrypt(token) == secret


def test_decrypt_with_another_key_is_invalid_input() -> None:
    token = SecretBox(Fernet.generate_key()).encrypt({"value": "x"})
    with pytest.raises(InvalidInput, match="cannot decrypt block secrets: the encryption key"):
        SecretBox(Fernet.generate_key().decode()).decrypt(token)
    with pytest.raises(InvalidInput, match="cannot decrypt"):
        SecretBox(Fernet.generate_key()).decrypt("not a token")


def test_repr_does_not_show_the_key() -> None:
    key = Fernet.generate_key().decode()
    assert key not in repr(SecretBox(key))


def test_key_file_is_created_private_and_reused(home: Path) -> None:
    token = SecretBox.from_environment().encrypt({"value": "hunter2"})
    key_file = home / "encryption.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [p.name for p in home.iterdir()] == ["encryption.key"]  # no temporary files left
    assert SecretBox.from_environment().decrypt(token) == {"value": "hunter2"}
    assert SecretBox(key_file.read_text()).decrypt(token) == {"value": "hunter2"}


def test_concurrent_first_use_agrees_on_one_key(home: Path) -> None:
    boxes: list[SecretBox] = []
    barrier = threading.Barrier(8)

    def first_use() -> None:
        barrier.wait()
        boxes.append(SecretBox.from_environment())

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(boxes) == 8
    token = boxes[0].encrypt({"value": "same"})
    assert all(box.decrypt(token) == {"value": "same"} for box in boxes)


def test_environment_key_wins_over_key_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file_token = SecretBox.from_environment().encrypt({"value": "from-file"})
    env_key = Fernet.generate_key().decode()
    monkeypatch.setenv("PUSH_POOLS_ENCRYPTION_KEY", env_key)
    box = SecretBox.from_environment()
    assert SecretBox(env_key).decrypt(box.encrypt({"value": "v"})) == {"value": "v"}
    with pytest.raises(InvalidInput):
        box.decrypt(file_token)


def test_environment_key_is_used_without_creating_a_key_file(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUSH_POOLS_ENCRYPTION_KEY", Fernet.generate_key().decode())
    SecretBox.from_environment()
    assert not (home / "encryption.key").exists()


def test_invalid_environment_key_says_how_to_make_one(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUSH_POOLS_ENCRYPTION_KEY", "my-password")
    with pytest.raises(InvalidInput) as excinfo:
        SecretBox.from_environment()
    message = excinfo.value.message
    assert "PUSH_POOLS_ENCRYPTION_KEY" in message
    assert "Fernet.generate_key()" in message
    assert "my-password" not in message


def test_corrupt_key_file_is_invalid_input(home: Path) -> None:
    (home / "encryption.key").write_text("garbage\n")
    with pytest.raises(InvalidInput, match="encryption.key"):
        SecretBox.from_environment()
