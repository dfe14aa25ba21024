"""Who may do what on a shared server: the access policy (emotion.access) on real files and
symlinks, names that cannot leave their folder, uploads read from memory, the upload
limit and XSRF setting the server really uses, and the Training page through AppTest with
training on, off and behind a password.
"""

from __future__ import annotations

import gzip
import os
import shutil
import sys

import pytest
from streamlit.testing.v1 import AppTest

from conftest import FER2013_CSV, ROOT, SHARED_DATA, app_page, require

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from emotion import access, data, jobs  # noqa: E402
from emotion.access import DATASETS_DIR, AccessPolicy, PathRefused, check_name, display_name  # noqa: E402
from emotion.data import DatasetError, load_fer2013_csv  # noqa: E402
from emotion.imageio import MAX_PIXELS  # noqa: E402

APP = ROOT / "app.py"
TIMEOUT = 300
SECRET = "TOPSECRET-line-of-a-private-file"
YUNET = SHARED_DATA / "detectors" / "face_detection_yunet_2026may.onnx"


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """allowed/ (a CSV, a folder, links in and out) beside outside/ (a private file)."""
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    (allowed / "faces" / "happy").mkdir(parents=True)
    outside.mkdir()
    (allowed / "mine.csv").write_text("emotion,pixels,Usage\n")
    (outside / "private.csv").write_text(f"emotion,pixels\n{SECRET}\n")
    (allowed / "link-in.csv").symlink_to(allowed / "mine.csv")
    (allowed / "link-out.csv").symlink_to(outside / "private.csv")
    (allowed / "link-out-missing.csv").symlink_to(outside / "missing.csv")
    (allowed / "dir-out").symlink_to(outside, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    return allowed, outside


def policy_for(*dirs, **settings) -> AccessPolicy:
    return AccessPolicy.from_settings(dict(settings, data_dirs=[str(d) for d in dirs]), environ={})


# --- settings -------------------------------------------------------------------------


def test_a_local_run_trains_and_reads_the_shared_data(monkeypatch, tmp_path):
    monkeypatch.delenv("FACEMOOD_DATA", raising=False)
    policy = AccessPolicy.from_settings(None, environ={})
    assert policy.training == "on" and policy.may_train() and not policy.problem
    shared = ROOT.parent / "shared" / "data"
    assert policy.data_dirs == (shared, DATASETS_DIR)  # FER2013's folder is inside shared
    assert policy.data_path(require(FER2013_CSV)) == FER2013_CSV.resolve()
    monkeypatch.chdir(ROOT)
    assert policy.data_path("../shared/data/fer2013/fer2013.csv.gz") == FER2013_CSV.resolve()
    with pytest.raises(PathRefused):
        policy.data_path("models/facemood-vgg.json")  # the project itself is not training data

    mine = tmp_path / "elsewhere" / "fer.csv.gz"  # $FACEMOOD_DATA's folder is allowed too
    monkeypatch.setenv("FACEMOOD_DATA", str(mine))
    assert AccessPolicy.from_settings(None, environ={}).data_dirs == (shared, mine.parent, DATASETS_DIR)


@pytest.mark.parametrize("settings, environ, training", [
    ({}, {"FACEMOOD_TRAINING": "off"}, "off"),
    ({}, {"FACEMOOD_TRAINING": " OFF "}, "off"),
    ({}, {"FACEMOOD_TRAINING": "on"}, "on"),
    ({}, {"FACEMOOD_TRAINING": ""}, "on"),
    ({}, {"FACEMOOD_PASSWORD": "pw"}, "password"),                    # a password alone implies it
    ({}, {"FACEMOOD_TRAINING": "password", "FACEMOOD_PASSWORD": "pw"}, "password"),
    ({"training": "on"}, {"FACEMOOD_TRAINING": "off"}, "on"),            # the secret wins
    ({"training": False}, {}, "off"),                                    # TOML booleans
    ({"training": True}, {}, "on"),
])
def test_training_setting(settings, environ, training):
    policy = AccessPolicy.from_settings(settings, environ=environ)
    assert policy.training == training and not policy.problem


@pytest.mark.parametrize("settings, says", [
    ({"training": "yes"}, "is not one of on, off, password"),
    ({"training": "password"}, "none is set"),
    ({"training": "password", "password": ""}, "none is set"),
])
def test_an_unclear_setting_turns_training_off(settings, says):
    policy = AccessPolicy.from_settings(settings, environ={})
    assert policy.training == "off" and says in policy.problem
    assert not policy.may_train() and not policy.may_train(policy.unlock_token())


def test_the_password_never_shows_in_the_policy():
    policy = AccessPolicy.from_settings({"password": "hunter2-long"}, environ={})
    assert "hunter2" not in repr(policy) and "hunter2" not in policy.unlock_token()


def test_password_checks_and_unlock_tokens():
    policy = AccessPolicy.from_settings({"training": "password", "password": "ünïcode pass"}, environ={})
    assert policy.check_password("ünïcode pass")
    for wrong in ("", "ünïcode", "ünïcode pass ", "UNICODE PASS", None, b"\xc3"):
        assert not policy.check_password(wrong)
    assert not policy.may_train() and not policy.may_train("forged")
    assert policy.may_train(policy.unlock_token())
    changed = AccessPolicy.from_settings({"training": "password", "password": "another"}, environ={})
    assert not changed.may_train(policy.unlock_token())  # a new password locks every session again
    assert not AccessPolicy.from_settings({"training": "off"}, environ={}).check_password("")


def test_data_dirs_from_the_environment(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    policy = AccessPolicy.from_settings({}, environ={"FACEMOOD_DATA_DIRS": f"{a}{os.pathsep}{b}{os.pathsep}"})
    assert policy.data_dirs == (a, b)
    none = AccessPolicy.from_settings({}, environ={"FACEMOOD_DATA_DIRS": ""})  # set but empty: none
    assert none.data_dirs == ()
    with pytest.raises(PathRefused, match="upload a FER2013 CSV instead"):
        none.data_path(str(FER2013_CSV))
    bad = AccessPolicy.from_settings({"data_dirs": 3}, environ={})
    assert bad.data_dirs == () and "not a list of folders" in bad.problem


# --- data paths -----------------------------------------------------------------------


def test_paths_inside_the_allowed_folders(tree):
    allowed, _ = tree
    policy = policy_for(allowed)
    assert policy.data_path(str(allowed / "mine.csv")) == allowed / "mine.csv"
    assert policy.data_path("allowed/mine.csv") == allowed / "mine.csv"               # relative
    assert policy.data_path(f"  {allowed}/faces/../mine.csv ") == allowed / "mine.csv"  # .. that stays in
    assert policy.data_path(str(allowed / "faces")) == allowed / "faces"
    assert policy.data_path(str(allowed)) == allowed
    assert policy.data_path(str(allowed / "link-in.csv")) == allowed / "mine.csv"     # a link that stays in
    # Missing inside the allowed folders: the dataset reader says so, as before.
    assert policy.data_path(str(allowed / "new.csv")) == allowed / "new.csv"


def test_an_allowed_folder_given_through_a_symlink(tree, tmp_path):
    allowed, _ = tree
    (tmp_path / "via").symlink_to(allowed, target_is_directory=True)
    policy = policy_for(tmp_path / "via")
    assert policy.data_path(str(tmp_path / "via" / "mine.csv")) == allowed / "mine.csv"


@pytest.mark.parametrize("typed", [
    "outside/private.csv",                          # relative, outside
    "{tmp}/outside/private.csv",                    # absolute, outside
    "{tmp}/outside/missing.csv",                    # the same for a path that does not exist
    "/etc/passwd",
    "/no/such/place.csv",
    "allowed/../outside/private.csv",               # .. out of the folder
    "allowed/../outside/missing.csv",
    "{tmp}/allowed/faces/../../outside/private.csv",
    "{tmp}/allowed-sibling/x.csv",                  # a name that only starts like the folder
    "allowed/link-out.csv",                         # a symlink out, to a file that exists
    "allowed/link-out-missing.csv",                 # ... and to one that does not
    "allowed/dir-out/private.csv",                  # through a symlinked folder
    "allowed/dir-out/../outside/private.csv",
    "allowed/dir-out/..",                           # looks like allowed/, is the parent of outside/
    "allowed/mine.csv\x00.png",                     # control characters
    "allowed/mine\n.csv",
    "allowed/" + "x" * 2000 + ".csv",               # too long
    "~",
    "",
    "   ",
])
def test_every_refused_path_gets_the_same_line(tree, tmp_path, typed):
    allowed, _ = tree
    (tmp_path / "allowed-sibling").mkdir()
    policy = policy_for(allowed)
    with pytest.raises(PathRefused) as refused:
        policy.data_path(typed.format(tmp=tmp_path))
    message = str(refused.value)
    assert message == f"Only data inside the allowed folders can be used: {allowed}."
    assert SECRET not in message and "\n" not in message


def test_a_pipe_inside_the_allowed_folders_is_refused(tree):
    allowed, _ = tree
    os.mkfifo(allowed / "pipe.csv")
    with pytest.raises(PathRefused, match="neither a file nor a folder"):
        policy_for(allowed).data_path(str(allowed / "pipe.csv"))


# --- names --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "../up", "..", ".", ".hidden", "-rf", "a/b", "a\\b", "/abs", "a\x00b", "a\nb", "tab\there",
    "bell\x07", "x" * 65, "", "   ", "é", "a b", "models/../x", "C:evil", "~user",
])
def test_names_that_could_leave_their_folder_are_refused(name, tmp_path):
    with pytest.raises(ValueError, match="cannot be a model name") as refused:
        check_name(name, "model", ".keras")
    assert "\n" not in str(refused.value) and "\x00" not in str(refused.value) and len(str(refused.value)) < 200
    with pytest.raises(ValueError, match="cannot be a model name"):
        jobs.check_model_name(name)  # the page and the jobs use this one check


@pytest.mark.parametrize("name, stem", [("mine", "mine"), ("vgg-2.keras", "vgg-2"), (" a_b.c ", "a_b.c"),
                                        ("x" * 64, "x" * 64), ("a..b", "a..b"), ("9.keras.keras", "9.keras")])
def test_accepted_names_stay_in_their_folder(name, stem, tmp_path):
    assert check_name(name, "model", ".keras") == stem
    target = tmp_path / f"{stem}.keras"
    assert target.parent == tmp_path and target.resolve().parent == tmp_path.resolve()


@pytest.mark.parametrize("sent, shown", [
    ("faces.csv", "faces.csv"), ("../../etc/passwd", "passwd"), ("C:\\Users\\me\\fer.csv", "fer.csv"),
    ("bad\x1b[31mred.csv", "bad[31mred.csv"), ("", "upload"), ("/", "upload"), ("x" * 300, "x" * 100),
])
def test_upload_names_are_shown_safely(sent, shown):
    assert display_name(sent) == shown


# --- uploads in memory ------------------------------------------------------------------


def small_csv(rows: int = 3) -> bytes:
    return ("emotion,pixels,Usage\n" + "".join(f"{i % 7},{' '.join(['9'] * 2304)},Training\n"
                                             for i in range(rows))).encode()


def test_an_upload_is_read_from_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for payload in (small_csv(), gzip.compress(small_csv())):
        dataset = load_fer2013_csv(payload, name="mine.csv")
        assert len(dataset) == 3 and dataset.labels.tolist() == [0, 1, 2] and dataset.source == "mine.csv"
    assert not list(tmp_path.iterdir()), "nothing was written"
    with pytest.raises(DatasetError, match=r"^mine\.csv: data row 1 has 3 pixel values"):
        load_fer2013_csv(b"emotion,pixels,Usage\n3,1 2 3,Training\n", name="mine.csv")
    with pytest.raises(DatasetError, match="not a readable gzip file"):
        load_fer2013_csv(gzip.compress(small_csv())[:40], name="cut.csv.gz")


def test_a_gzip_bomb_is_refused_before_it_unpacks(monkeypatch):
    monkeypatch.setattr(data, "MAX_CSV_BYTES", 4096)
    with pytest.raises(DatasetError, match="unpacks to more than"):
        load_fer2013_csv(gzip.compress(small_csv(10)), name="bomb.csv.gz")


# --- the server's own settings -----------------------------------------------------------


@pytest.fixture
def project_config(monkeypatch):
    """Streamlit's configuration as `streamlit run app.py` in the project folder gets it."""
    from streamlit import config

    monkeypatch.chdir(ROOT)
    config.get_config_options(force_reparse=True)
    yield config
    monkeypatch.undo()
    config.get_config_options(force_reparse=True)


def test_the_upload_limit_is_what_the_app_accepts(project_config):
    assert project_config.get_option("server.maxUploadSize") == access.MAX_UPLOAD_MB
    limit = access.MAX_UPLOAD_MB * 2**20  # Streamlit counts MiB
    assert MAX_PIXELS * 3 < limit < MAX_PIXELS * 3 + 2 * 2**20  # the largest photo, uncompressed
    assert require(FER2013_CSV).stat().st_size < limit               # FER2013 as its .csv.gz


def test_xsrf_protection_stays_on(project_config):
    assert project_config.get_option("server.enableXsrfProtection") is True


# --- the Training page ----------------------------------------------------------------------


@pytest.fixture
def page_env(tmp_path, monkeypatch, app_model):
    """A fast Training page: no model to inspect, its own models and runs folders."""
    for name in ("FACEMOOD_TRAINING", "FACEMOOD_PASSWORD", "FACEMOOD_DATA_DIRS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FACEMOOD_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("FACEMOOD_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("FACEMOOD_MODEL", str(tmp_path / "models" / "none.keras"))
    return tmp_path


def training_page(secrets: dict | None = None) -> AppTest:
    return app_page("pages/training.py", secrets, TIMEOUT)


def start_button(at: AppTest):
    return [b for b in at.button if b.key == "start"]


def unlock(at: AppTest, password: str) -> AppTest:
    at.text_input(key="access_password").set_value(password)
    next(b for b in at.button if b.label == "Unlock training").click().run()
    assert not at.exception, at.exception
    return at


def test_training_off_says_so_in_one_line(page_env, monkeypatch, app_model):
    monkeypatch.setenv("FACEMOOD_TRAINING", "off")
    (page_env / "models").mkdir()
    shutil.copy(app_model, page_env / "models" / "other.keras")
    at = training_page()
    assert [i.value for i in at.info].count("Training is turned off on this server.") == 1
    assert not start_button(at) and not [t for t in at.text_input if t.key in ("data_path", "access_password")]
    # Choosing the model everyone uses is a change to the server too.
    use = [b for b in at.button if b.key == "use-a"]
    assert use and use[0].disabled and "Only those who may train" in use[0].help


def test_training_behind_a_password(page_env):
    secrets = {"access": {"training": "password", "password": "open sesame"}}
    at = training_page(secrets)
    assert not start_button(at) and at.text_input(key="access_password").proto.type == 1  # PASSWORD

    unlock(at, "open says me")
    assert [e.value for e in at.error] == ["Wrong password."]
    assert not start_button(at)

    unlock(at, "open sesame")
    assert not at.error and start_button(at) and not start_button(at)[0].disabled
    try:
        kept = at.session_state["access_password"]
    except KeyError:  # the box is gone once unlocked
        kept = ""
    assert kept == "", "the typed password is not kept"
    at.run()
    assert start_button(at), "unlocked for the rest of the session"

    other = training_page(secrets)  # another browser session is still locked
    assert not start_button(other)


def test_training_on_by_default(page_env):
    at = training_page()
    assert start_button(at) and at.text_input(key="data_path")
    assert not [t for t in at.text_input if t.key == "access_password"]


def test_a_refused_data_path_tells_nothing_about_it(page_env, tree, monkeypatch):
    allowed, outside = tree
    monkeypatch.setenv("FACEMOOD_DATA_DIRS", str(allowed))
    at = training_page()
    before = jobs.current_job()
    seen = set()
    for typed in (outside / "private.csv", outside / "missing.csv", allowed / "link-out.csv",
                  allowed / "link-out-missing.csv", "/etc/passwd", "/no/such/file.csv"):
        at.text_input(key="data_path").set_value(str(typed))
        at.text_input(key="model_name").set_value("never")
        at.button(key="start").click().run()
        assert not at.exception, at.exception
        errors = [e.value for e in at.error]
        assert len(errors) == 1 and "\n" not in errors[0], errors
        assert SECRET not in errors[0] and str(typed) not in errors[0] and "not found" not in errors[0]
        seen.add(errors[0])
    assert seen == {f"Only data inside the allowed folders can be used: {allowed}."}
    assert jobs.current_job() is before and not (page_env / "models" / "never.keras").exists()


def test_an_uploaded_csv_trains_from_memory(page_env, fer2013_slice):
    plain = fer2013_slice.read_bytes()
    packed = gzip.compress(plain)
    at = training_page()
    at.radio(key="data_source").set_value("upload").run()
    at.file_uploader(key="data_upload").set_value(("mine.csv.gz", packed, "application/gzip")).run()
    at.text_input(key="model_name").set_value("from-upload")
    at.button(key="start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = jobs.current_job()
    try:
        assert job.name == "from-upload" and len(job.data) == 384 and job.data.source == "mine.csv.gz"
    finally:
        job.stop()
        job.join(TIMEOUT)
    # Neither the upload nor its unpacked rows are anywhere in the models or runs folders.
    row = plain.splitlines()[1][:300]
    files = [p for p in page_env.rglob("*") if p.is_file()]
    for path in files:
        content = path.read_bytes()
        assert row not in content and packed[10:80] not in content, path


# --- the Image page's YuNet path ---------------------------------------------------------


@pytest.fixture
def image_env(monkeypatch, app_model):
    for name in ("FACEMOOD_TRAINING", "FACEMOOD_PASSWORD", "FACEMOOD_DATA_DIRS", "FACEMOOD_DATA"):
        monkeypatch.delenv(name, raising=False)


def image_page_with_yunet(path: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page("pages/image.py").run()
    at.radio(key="detector").set_value("YuNet (your .onnx file)").run()
    at.text_input(key="yunet_path").set_value(path).run()
    assert not at.exception, at.exception
    return at


def test_a_yunet_path_outside_the_allowed_folders_is_not_read(image_env, tree, monkeypatch):
    allowed, outside = tree
    monkeypatch.setenv("FACEMOOD_DATA_DIRS", str(allowed))
    (outside / "real.onnx").write_bytes(require(YUNET).read_bytes())
    seen = set()
    for typed in (outside / "real.onnx", outside / "missing.onnx", outside / "private.csv", "/dev/zero"):
        warnings = [w.value for w in image_page_with_yunet(str(typed)).sidebar.warning]
        assert len(warnings) == 1 and "\n" not in warnings[0], warnings
        seen.add(warnings[0])
    assert seen == {f"YuNet file not used: Only data inside the allowed folders can be used: {allowed}."}


def test_the_shared_yunet_detector_is_allowed_by_default(image_env):
    at = image_page_with_yunet(str(require(YUNET)))
    assert not at.warning and not at.error, [w.value for w in at.warning]
    assert not [i for i in at.sidebar.info if "Enter the path" in i.value]


# --- uploads are never written ----------------------------------------------------------

_writes: list | None = None  # files opened for writing while recording


def _audit(event: str, args: tuple) -> None:
    if _writes is None or event != "open":
        return
    path, mode, flags = args
    writing = (flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND)) if isinstance(flags, int) \
        else isinstance(mode, str) and any(c in mode for c in "wax+")
    if writing:
        _writes.append(path)


@pytest.fixture
def file_writes(tmp_path_factory):
    """The files this process opens for writing meanwhile (Python's audit "open" events; a
    library writing from C would not show, so the tests also look at the files)."""
    global _writes
    if not getattr(sys, "_facemood_audit", False):
        sys.addaudithook(_audit)  # cannot be removed; inert while not recording
        sys._facemood_audit = True
    _writes = []
    probe = tmp_path_factory.mktemp("probe") / "written.txt"
    probe.write_text("the hook sees this")
    assert str(probe) in [str(p) for p in _writes], _writes
    _writes.clear()
    yield _writes
    _writes = None


def test_an_uploaded_photo_is_never_written(image_env, file_writes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page("pages/image.py").run()
    photo = require(SHARED_DATA / "faces" / "fer_justin.jpg").read_bytes()
    file_writes.clear()
    at.file_uploader(key="photos").set_value([("justin.jpg", photo, "image/jpeg")]).run()
    assert not at.exception and [s.value for s in at.subheader] == ["justin.jpg"]
    assert [len(t.value) for t in at.dataframe] == [1], "the face was found and analysed"
    assert file_writes == [], file_writes
    assert not list(tmp_path.iterdir())
