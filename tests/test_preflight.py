"""The pre-flight check: one actionable line per problem, a non-zero exit status on any."""
import pytest

from contrastive_lab import preflight
from contrastive_lab.course_timings import REFERENCE, expected_seconds
from contrastive_lab.preflight import Check, check_package, locked_versions, report


def test_the_lock_file_is_read_as_exact_pins(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("# a comment\nTorch==2.14.1\n    # via x\nscikit_learn==1.9.1\n")
    assert locked_versions(lock) == {"torch": "2.14.1", "scikit-learn": "1.9.1"}
    assert locked_versions(tmp_path / "missing.txt") == {}


def test_a_package_at_another_version_than_the_lock_says_how_to_fix_it():
    import numpy

    assert check_package("numpy", "numpy", {"numpy": numpy.__version__}).ok
    wrong = check_package("numpy", "numpy", {"numpy": "0.0.1"})
    assert not wrong.ok and "the course pins 0.0.1" in wrong.detail and "make lab" in wrong.detail


def test_other_versions_are_accepted_when_asked(monkeypatch):
    monkeypatch.setenv("CLAB_VERSIONS", "any")
    check = check_package("numpy", "numpy", {"numpy": "0.0.1"})
    assert check.ok and "pins 0.0.1" in check.detail


def test_a_missing_package_says_how_to_install_it():
    check = check_package("no_such_module_xyz", "no-such-dist", {})
    assert not check.ok and "cannot be imported" in check.detail and "make lab" in check.detail


def test_local_version_labels_do_not_count_as_a_difference():
    assert preflight._public("2.14.1+cu130") == preflight._public("2.14.1")


def test_expected_times_scale_with_the_speed_test():
    half = expected_seconds(REFERENCE.step_ms / 2)
    full = expected_seconds(REFERENCE.step_ms)
    for name, seconds in full.items():
        assert (seconds is None and half[name] is None) or half[name] == pytest.approx(seconds / 2)
    with pytest.raises(ValueError, match="step_ms must be > 0"):
        expected_seconds(0)


def test_the_widget_front_end_matches_ipywidgets_here():
    check = preflight.check_widget_frontend()
    assert check.ok, check.detail


def test_fast_checks_pass_on_the_course_environment():
    checks = preflight.run_checks(fast=True)
    names = [c.name for c in checks]
    assert {"python", "torch", "widget front-end", "device", "data cache", "free disk", "free memory"} <= set(names)
    assert all(c.ok for c in checks), report(checks)


def test_report_marks_failures_and_main_exits_non_zero(monkeypatch, capsys):
    checks = [Check("torch", True, "2.14"), Check("free disk", False, "0.5 GB free: free some")]
    text = report(checks)
    assert "OK   torch" in text and "FIX  free disk" in text and text.endswith("=> fix the lines marked FIX")
    monkeypatch.setattr(preflight, "run_checks", lambda fast=False: checks)
    assert preflight.main([]) == 1
    monkeypatch.setattr(preflight, "run_checks", lambda fast=False: checks[:1])
    assert preflight.main(["--fast"]) == 0
    assert "ready for the course" in capsys.readouterr().out


def test_a_slow_machine_is_a_warning_with_the_expected_minutes_not_a_fix(monkeypatch, capsys):
    from contrastive_lab.profiles import get_profile

    monkeypatch.setattr(preflight, "speed_test", lambda profile, device, seconds: 31 * REFERENCE.step_ms)
    speed, minutes = preflight.check_speed(get_profile("quick"), "cpu")
    assert speed.ok and speed.warn and speed.label == "WARN"
    assert "about 31× slower than planned" in speed.detail
    assert minutes.ok and "total" in minutes.detail              # the expected minutes, scaled to this machine
    text = report([Check("torch", True, "2.14"), speed, minutes])
    assert "WARN speed test" in text and "FIX" not in text
    assert text.endswith("=> ready for the course, with the warnings marked WARN")
    monkeypatch.setattr(preflight, "run_checks", lambda fast=False: [speed, minutes])
    assert preflight.main([]) == 0                              # make test and notebook 00 go on
    monkeypatch.setattr(preflight, "speed_test", lambda profile, device, seconds: REFERENCE.step_ms)
    assert preflight.check_speed(get_profile("quick"), "cpu")[0].label == "OK"


def test_the_speed_is_never_printed_as_zero(monkeypatch):
    from contrastive_lab.profiles import get_profile

    monkeypatch.setattr(preflight, "speed_test", lambda profile, device, seconds: 37 * REFERENCE.step_ms)
    assert "(1/37 of the speed of the reference machine" in preflight.check_speed(get_profile("quick"), "cpu")[0].detail
    monkeypatch.setattr(preflight, "speed_test", lambda profile, device, seconds: REFERENCE.step_ms / 2)
    assert "(2.0× the speed of the reference machine" in preflight.check_speed(get_profile("quick"), "cpu")[0].detail
