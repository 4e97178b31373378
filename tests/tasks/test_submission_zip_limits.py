"""Submission zips that are too large or ambiguous are refused before anything is inflated or scored."""

from __future__ import annotations

import struct
import warnings
import zipfile

import pytest

from slopeft.cli import main
from slopeft.errors import SubmissionError
from slopeft.tasks import get_tasks
from slopeft.tasks import submission as S
from slopeft.tasks.submission import parse_unit, read_prediction_files, submission_files, write_zip


def _gold(tasks, split="val"):
    return {t.name: {e.idx: e.label for e in t.examples(split)} for t in tasks}


def _zip(path, members, compression=zipfile.ZIP_DEFLATED):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns on a duplicate name; we want one
        with zipfile.ZipFile(path, "w", compression=compression) as archive:
            for member, data in members:
                archive.writestr(member, data)
    return path


def _check(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return exit_info.value.code, " ".join(err.split())


# -- sizes --------------------------------------------------------------------------------------------


def test_a_member_over_the_cap_is_refused_and_one_at_the_cap_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "MAX_MEMBER_BYTES", 1000)
    at_cap = _zip(tmp_path / "ok.zip", [("out.txt", b"x" * 1000)])
    assert read_prediction_files(at_cap) == {"out.txt": b"x" * 1000}
    over = _zip(tmp_path / "big.zip", [("out.txt", b"x" * 1001)])
    with pytest.raises(SubmissionError, match=r"out.txt holds 1,001 bytes once unpacked, more than the 1,000 bytes"):
        read_prediction_files(over)


def test_a_header_that_understates_the_size_does_not_get_past_the_cap(tmp_path, monkeypatch):
    path = _zip(tmp_path / "lying.zip", [("out.txt", b"x" * 5000)])
    raw = bytearray(path.read_bytes())
    # Declare 10 bytes uncompressed in the local header (offset 22) and the central directory (offset 24).
    local = raw.find(b"PK\x03\x04")
    central = raw.find(b"PK\x01\x02")
    struct.pack_into("<I", raw, local + 22, 10)
    struct.pack_into("<I", raw, central + 24, 10)
    path.write_bytes(bytes(raw))
    monkeypatch.setattr(S, "MAX_MEMBER_BYTES", 1000)
    with pytest.raises(SubmissionError):
        read_prediction_files(path)
    # zipfile stops at the declared size (then fails the CRC); the chunked read also stops at the cap
    # on its own, whatever the header says.
    monkeypatch.setattr(S, "_CHUNK", 100)
    good = _zip(tmp_path / "good.zip", [("out.txt", b"x" * 5000)])
    with zipfile.ZipFile(good) as archive:
        (member,) = archive.infolist()
        with pytest.raises(SubmissionError, match="more than 1,000 bytes"):
            S._read_member(archive, member, good)


def test_the_total_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "MAX_TOTAL_BYTES", 1500)
    path = _zip(tmp_path / "two.zip", [("a.txt", b"x" * 800), ("b.txt", b"y" * 800)])
    with pytest.raises(SubmissionError, match=r"holds 1,600 bytes of files in all, more than the 1,500 bytes"):
        read_prediction_files(path)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"x" * 800)
    (folder / "b.txt").write_bytes(b"y" * 800)
    with pytest.raises(SubmissionError, match="in all"):
        read_prediction_files(folder)


def test_a_file_over_the_cap_in_a_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "MAX_MEMBER_BYTES", 100)
    (tmp_path / "out.txt").write_bytes(b"x" * 101)
    with pytest.raises(SubmissionError, match=r"out.txt holds 101 bytes"):
        read_prediction_files(tmp_path)


def test_too_many_members_are_refused(tmp_path):
    path = _zip(tmp_path / "many.zip", [(f"f{i}.txt", b"") for i in range(S.MAX_MEMBERS + 1)])
    with pytest.raises(SubmissionError, match=f"holds {S.MAX_MEMBERS + 1} files"):
        read_prediction_files(path)


def test_a_zip_bomb_is_refused_by_the_cli_without_a_traceback(real_data_env, tmp_path, capsys):
    # 65 MiB of one byte deflates to about 65 KB: the default cap refuses it from the header.
    bomb = _zip(tmp_path / "bomb.zip", [("out.txt", b"a" * (S.MAX_MEMBER_BYTES + 2**20))])
    assert bomb.stat().st_size < 2**20
    code, err = _check(["submission", "check", str(bomb), "--task", "mt/sl-en"], capsys)
    assert code == 2 and "65.0 MiB once unpacked, more than the 64.0 MiB" in err


# -- ambiguity ----------------------------------------------------------------------------------------


def test_two_members_of_one_name_are_refused(tiny_superglue, tmp_path):
    tasks = get_tasks("slo-superglue", tiny_superglue)
    files = submission_files(tasks, _gold(tasks), "val")
    members = [(name, text.encode()) for name, text in files.items()]
    assert parse_unit(tasks, read_prediction_files(_zip(tmp_path / "ok.zip", members)), "val") == _gold(tasks)
    twice = _zip(tmp_path / "twice.zip", [*members, ("CB.jsonl", files["CB.jsonl"].encode())])
    with pytest.raises(SubmissionError, match=r"ambiguous.*'CB.jsonl' and 'CB.jsonl'"):
        read_prediction_files(twice)


def test_names_that_differ_only_in_case_are_refused(tmp_path):
    path = _zip(tmp_path / "case.zip", [("CB.jsonl", b"{}\n"), ("cb.jsonl", b"{}\n")])
    with pytest.raises(SubmissionError, match=r"ambiguous.*'CB.jsonl' and 'cb.jsonl'"):
        read_prediction_files(path)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "submission.txt").write_text("neutral\n")
    (folder / "Submission.txt").write_text("entailment\n")
    with pytest.raises(SubmissionError, match="differ only in letter case"):
        read_prediction_files(folder)


def _member(name, **attrs):
    info = zipfile.ZipInfo(name)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


@pytest.mark.parametrize(
    ("info", "why"),
    [
        (_member("out.txt", create_system=3, external_attr=0o120777 << 16), "a symbolic link"),
        (_member("out.txt", compress_type=zipfile.ZIP_BZIP2), "compressed with a method other than"),
    ],
)
def test_members_that_are_not_plain_files_are_refused(tmp_path, info, why):
    path = tmp_path / "odd.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(info, b"A translation.\n")
    with pytest.raises(SubmissionError, match=rf"out.txt \({why}"):
        read_prediction_files(path)


def test_an_encrypted_member_is_refused(tmp_path):
    path = _zip(tmp_path / "enc.zip", [("out.txt", b"A translation.\n")])
    raw = bytearray(path.read_bytes())
    # Set bit 0 (encrypted) of the general-purpose flags in the local header and the central directory.
    raw[raw.find(b"PK\x03\x04") + 6] |= 0x1
    raw[raw.find(b"PK\x01\x02") + 8] |= 0x1
    path.write_bytes(bytes(raw))
    with pytest.raises(SubmissionError, match=r"out.txt \(encrypted\)"):
        read_prediction_files(path)


def test_a_windows_folder_separator_counts_as_a_folder(tmp_path):
    path = _zip(tmp_path / "win.zip", [("preds\\CB.jsonl", b"{}\n")])
    with pytest.raises(SubmissionError, match="inside folders"):
        read_prediction_files(path)


def test_our_own_zips_pass_every_check(tiny_superglue, tmp_path):
    tasks = get_tasks("slo-superglue", tiny_superglue)
    out = write_zip(submission_files(tasks, _gold(tasks), "val"), tmp_path / "s.zip")
    assert parse_unit(tasks, read_prediction_files(out), "val") == _gold(tasks)
