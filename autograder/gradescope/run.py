"""What ``run_autograder`` runs inside Gradescope's container, once per submission.

1. Find the file under ``$AUTOGRADER_ROOT/submission`` (:mod:`.submission`).
2. Copy it into a private folder (mode 0700, outside results/) and grade that
   folder with ``grade_batch``: the CLI's own code, rubric, feedback and statuses.
   The sandbox (whose zygote imports torch) is started first, on a thread, and this
   process imports the grader (torch too) meanwhile: the two imports overlap
   instead of following each other. No student code runs before grade_batch asks.
   Student code runs as SANDBOX_UID, never as root: when that uid cannot read
   Python (and no mount namespace can show it), the sandbox refuses and the
   results say so (score 0, a message for the staff).
3. Kill every process still running as SANDBOX_UID (a detached daemon of the
   student's), until none is left.
4. Write ``$AUTOGRADER_ROOT/results/results.json`` ourselves, atomically (temp
   file + rename). While student code runs, results/ and its parent belong to a
   guard uid, so the sandbox uid can neither write nor chmod them.

Stdout is for the staff (Gradescope keeps it in results/stdout): it says which
sandbox layers held. Exit 0 whenever results.json was written.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
import traceback
import warnings
from pathlib import Path

# Nothing imported here imports torch: autograder.grade.batch, outputs and scoring do, and
# are imported in the functions that need them, once the sandbox has started.
from autograder.grade.sandbox import IsolationError, Limits
from autograder.grade.sandbox.privileges import NOBODY
from autograder.gradescope.permissions import restrict_kit
from autograder.gradescope.results import VISIBILITIES, gradescope_results, settings_problems, write_results
from autograder.gradescope.submission import STUDENT_FILE, find_submission
from autograder.spec import RUBRIC_PATH, load_rubric

CONFIG_NAME = "gradescope.json"   # written into the zip by ``python -m autograder gradescope``
KIT_ROOT = Path(__file__).resolve().parents[2]
# One student per container: named as the CLI names a single file it grades (its stem), so the
# feedback's heading reads the same ("Feedback for resnet50_skeleton") both ways.
STUDENT = Path(STUDENT_FILE).stem
DEFAULTS = {"visibility": "visible", "timeout_s": 60.0, "memory_mb": 4096}
# Owner of results/ while student code runs: neither root nor the sandbox's uid.
GUARD_UID = 65533
# Student code runs as this uid: no process of Gradescope's image uses it, so every process
# running as it after grading is the student's, and is killed. Not nobody: on a machine of
# one's own, the sweep would kill other programs' nobody processes. Below 65536 for
# containers whose user namespace maps only that many uids.
SANDBOX_UID = 65532
PROBE_JOB = "autograder.grade.probe:run_probe"   # the job grade_batch gives its sandbox
NOT_RUN = ("your code was not run: the autograder could not run it safely ({why}). This is not "
           "your fault; course staff: run setup.sh in the image (it makes the Python environment "
           "readable by the sandbox's user), or run the grader as root")


def load_config(kit_root: Path | None = None) -> dict:
    path = (kit_root or KIT_ROOT) / CONFIG_NAME
    config = dict(DEFAULTS)
    if path.is_file():
        config.update(json.loads(path.read_text(encoding="utf-8")))
    return config


class _EarlySandbox:
    """A Sandbox started on a thread of its own, ahead of grade_batch, with the arguments
    grade_batch will ask for. The thread lives until the sandbox is closed: the zygote
    dies with the thread that started it (PR_SET_PDEATHSIG follows the thread)."""

    def __init__(self, factory, kwargs: dict):
        self.kwargs = kwargs
        self.sandbox = self.error = None
        self.taken = False
        self._ready, self._release = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._keep, args=(factory,), name="early-sandbox", daemon=True)
        self._thread.start()

    def _keep(self, factory) -> None:
        try:
            self.sandbox = factory(**self.kwargs)
        except BaseException as exc:   # noqa: BLE001 -- raised again where grade_batch asks for it
            self.error = exc
        finally:
            self._ready.set()
        self._release.wait()

    def take(self):
        """The started sandbox (grade_batch closes it), or what stopped it from starting."""
        self._ready.wait()
        self.taken = True
        if self.error is not None:
            raise self.error
        return self.sandbox

    def end(self) -> None:
        """Close it if grade_batch never took it; let the thread go."""
        self._ready.wait()
        if self.sandbox is not None and not self.taken:
            self.sandbox.close()
        self._release.set()
        self._thread.join()


@contextlib.contextmanager
def recording_sandbox(disable=(), uid: int = SANDBOX_UID, early: dict | None = None):
    """grade_batch builds its own Sandbox; swap in one that runs student code as ``uid``
    and never as root, remembers the layers it got (and, for tests, starts with some
    layers switched off) for this run only. ``early``: the arguments grade_batch will
    pass; the sandbox starts now, and grade_batch gets that one when it asks for it with
    exactly these (any other request gets a fresh one)."""
    import autograder.grade.sandbox as sandbox_pkg

    original = sandbox_pkg.Sandbox
    seen: dict = {"layers": [], "warning": None}

    class RecordingSandbox(original):
        def __init__(self, *args, **kwargs):
            if disable:
                kwargs["disable"] = tuple(disable)
            kwargs.update(uid=uid, never_root=True)
            super().__init__(*args, **kwargs)
            seen["layers"], seen["warning"] = list(self.isolation), self.warning

    # grade_batch prints the sandbox's warning on stdout. A filter for the whole process, not
    # catch_warnings: that is not thread-safe, and the sandbox may start on another thread.
    warnings.filterwarnings("ignore", message="sandbox: ", category=RuntimeWarning)
    started = _EarlySandbox(RecordingSandbox, early) if early is not None else None

    def sandbox_for_batch(*args, **kwargs):
        if started is not None and not started.taken and not args and kwargs == started.kwargs:
            seen["started_early"] = True
            return started.take()
        return RecordingSandbox(*args, **kwargs)

    sandbox_pkg.Sandbox = sandbox_for_batch
    try:
        yield seen
    finally:
        sandbox_pkg.Sandbox = original
        if started is not None:
            started.end()


def _not_graded(status: str, message: str, notes=()) -> tuple[dict, str]:
    """Results for a submission the sandbox never ran: the batch grader's own functions."""
    from autograder.grade.outputs import feedback_markdown, results_json
    from autograder.grade.scoring import failed

    graded = failed(STUDENT, status, message, load_rubric(RUBRIC_PATH))
    return results_json(graded, "", notes), feedback_markdown(graded, notes)


def grade_submission(root: Path, timeout_s: float, memory_mb: int, disable=(),
                     uid: int = SANDBOX_UID) -> tuple[dict, str, dict, object]:
    """(batch results, feedback markdown, sandbox record, what was found) for ``root``/submission."""
    found = find_submission(root / "submission")
    seen: dict = {"layers": [], "warning": None}
    if found.source is None:
        results, feedback = _not_graded(found.status, found.problem)
        return results, feedback, seen, found
    private = Path(tempfile.mkdtemp(prefix="gradescope-"))   # 0700: only this user reads it
    try:
        students = private / "submissions"
        (students / STUDENT).mkdir(parents=True)
        (students / STUDENT / STUDENT_FILE).write_bytes(found.source)
        out = private / "out"
        # What grade_batch will give Sandbox() (see _grade_in_sandbox): its hidden paths too.
        early = {"job": PROBE_JOB, "limits": Limits(timeout_s=timeout_s, memory_bytes=memory_mb * 1024 * 1024),
                 "hidden_paths": [out.resolve(), students.resolve()], "isolation": "auto"}
        try:
            with recording_sandbox(disable, uid, early) as seen:
                from autograder.grade.batch import grade_batch   # torch, while the zygote imports it too

                [results] = grade_batch(students, out, jobs=1, timeout_s=timeout_s, memory_mb=memory_mb,
                                        force=True, progress=False, isolation="auto")
        except IsolationError as exc:   # the sandbox refused before any student code ran
            seen["refused"] = str(exc)
            results, feedback = _not_graded("crashed", NOT_RUN.format(why=exc))
            return results, feedback, seen, found
        feedback_file = out / "feedback" / f"{STUDENT}.md"
        feedback = feedback_file.read_text(encoding="utf-8") if feedback_file.is_file() else ""
        return results, feedback, seen, found
    finally:
        shutil.rmtree(private, ignore_errors=True)


def live_processes_of(uid: int, but: int = 0, only: int = 0) -> list[int]:
    """Pids of the processes (not zombies) whose real, effective or saved uid is ``uid``
    (``only``: look at that pid alone)."""
    pids = []
    for entry in [str(only)] if only else os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == but:
            continue
        try:
            with open(f"/proc/{entry}/status", encoding="utf-8", errors="replace") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue   # gone meanwhile
        ids = fields.get("Uid", "").split()[:3]
        if str(uid) in ids and not fields.get("State", "").strip().startswith(("Z", "X")):
            pids.append(int(entry))
    return pids


def sweep_sandbox_uid(uid: int, attempts: int = 10, rounds: int = 100,
                      helper_timeout_s: float = 3.0) -> tuple[int, list[int]]:
    """Kill every process running as ``uid``; returns (how many there were, pids still alive).

    A forked helper becomes ``uid`` and sends SIGKILL to -1: the kernel delivers it to every
    process of that uid in one pass that a fork cannot slip past (a process with a pending
    SIGKILL cannot fork), and to no process of any other user. Repeated until /proc shows
    none. Being of that uid, the helper can itself be killed or stopped by a student process
    that loops on kill(-1, ...): it is never waited for longer than ``helper_timeout_s``
    (then killed by this root process) and a new one is forked, ``attempts`` times at most;
    what is left then is returned for the staff to see."""
    before = live_processes_of(uid)
    for _ in range(attempts):
        if not live_processes_of(uid):
            break
        _kill_listed(uid)   # what does not fork dies here, even one that would kill the helper
        with warnings.catch_warnings():   # Python 3.12 warns about fork with threads; the helper only makes syscalls
            warnings.simplefilter("ignore", DeprecationWarning)
            helper = os.fork()
        if helper == 0:
            code = 1
            try:
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
                me = os.getpid()
                for _ in range(rounds):
                    try:
                        os.kill(-1, signal.SIGKILL)   # never the caller itself
                    except OSError:
                        pass                           # ESRCH: nothing of that uid was left
                    if not live_processes_of(uid, but=me):
                        code = 0
                        break
                    time.sleep(0.01)
            finally:
                os._exit(code)
        _reap(helper, helper_timeout_s)
    return len(before), live_processes_of(uid)


def _kill_listed(uid: int) -> None:
    """SIGKILL, from root, each process of ``uid`` that /proc lists, through a pidfd: the pid
    is checked to be of ``uid`` after the pidfd pins it, so a pid reused meanwhile by another
    user's process is never signalled. A process that forks faster than this lists them is
    the helper's job (kill(-1) as that uid)."""
    for pid in live_processes_of(uid):
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue   # gone already
        try:
            if pid in live_processes_of(uid, only=pid):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
        except OSError:
            pass
        finally:
            os.close(fd)


def _reap(pid: int, timeout_s: float) -> None:
    """Wait for ``pid`` at most ``timeout_s`` (polling: a stopped child never exits), then
    SIGKILL it (root may; a stopped process dies too) and reap it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.01)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(500):   # SIGKILL ends it at once; 5 s is a generous bound, never forever
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            return
        time.sleep(0.01)


@contextlib.contextmanager
def results_dir_locked(results_dir: Path):
    """While student code runs, results/ (and the folder holding it, so it cannot be
    renamed away and replaced) is writable by no one but root.

    Owned by GUARD_UID (not the sandbox's uid) and without group/other write,
    the folders are neither writable nor chmod-able by student code. A
    results.json left from before is removed first, so a crash never leaves a
    stale (or planted) file behind.
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "results.json").unlink(missing_ok=True)
    os.chmod(results_dir, 0o755)
    locked = []
    try:
        if os.geteuid() == 0:
            for folder in (results_dir.parent, results_dir):
                before = os.stat(folder)
                os.chown(folder, GUARD_UID, GUARD_UID)
                locked.append((folder, before))
                os.chmod(folder, before.st_mode & 0o755)   # chown may clear nothing, but no group/other write
        yield
    finally:
        for folder, before in reversed(locked):
            os.chown(folder, before.st_uid, before.st_gid)
            os.chmod(folder, stat.S_IMODE(before.st_mode))


def main(argv: list[str] | None = None) -> int:
    try:
        config, config_problem = load_config(), ""
    except (OSError, ValueError, TypeError) as exc:   # a gradescope.json edited by hand
        config, config_problem = dict(DEFAULTS), f"{CONFIG_NAME} could not be read ({exc})"
    parser = argparse.ArgumentParser(prog="run_autograder",
                                     description="Grade $AUTOGRADER_ROOT/submission into results/results.json.")
    # Defaults (None here) from gradescope.json as it is, checked with the options before results/ is
    # touched: argparse would convert a string default itself and exit 2 without results.
    parser.add_argument("--timeout", type=float, default=None,
                        help=f"wall-clock seconds for the student's code (default {config['timeout_s']})")
    parser.add_argument("--memory-mb", type=int, default=None,
                        help=f"memory for the student's code in MiB (default {config['memory_mb']})")
    parser.add_argument("--visibility", choices=VISIBILITIES, default=config["visibility"],
                        help=f"who sees the tests when (default {config['visibility']})")
    parser.add_argument("--disable-layer", action="append", default=[], metavar="LAYER",
                        help="for tests: switch a sandbox layer off (landlock, mount, pivot_root) "
                             "to see how the grader does in a container without it")
    parser.add_argument("--sandbox-uid", type=int, default=SANDBOX_UID, metavar="UID",
                        help=f"uid student code runs as when this runs as root (default {SANDBOX_UID}); "
                             f"every process of that uid is killed after grading, so give each of "
                             f"several runs on one machine its own")
    args = parser.parse_args(argv)
    if not 0 < args.sandbox_uid < 65536 or args.sandbox_uid == GUARD_UID:
        parser.error(f"--sandbox-uid must be between 1 and 65535 and not {GUARD_UID} (the guard of results/)")
    root = Path(os.environ.get("AUTOGRADER_ROOT") or "/autograder")
    results_dir = root / "results"
    problems = [config_problem] if config_problem else []
    args.timeout = config["timeout_s"] if args.timeout is None else args.timeout
    args.memory_mb = config["memory_mb"] if args.memory_mb is None else args.memory_mb
    problems += settings_problems({"visibility": args.visibility, "timeout_s": args.timeout,
                                   "memory_mb": args.memory_mb})
    if problems:
        return misconfigured(results_dir, problems)
    as_root = os.geteuid() == 0
    kit_modes = None
    if as_root and (KIT_ROOT / CONFIG_NAME).is_file():
        # The unpacked zip (never a developer's checkout): also done by setup.sh; again here in
        # case the image was built another way, or a .pyc was written since.
        try:
            kit_modes = restrict_kit(KIT_ROOT)
        except OSError as exc:
            kit_modes = {"error": f"{exc.filename}: {exc.strerror}"}
    start = time.monotonic()
    swept: tuple[int, list[int]] | None = None
    try:
        with results_dir_locked(results_dir):
            try:
                results, feedback, seen, found = grade_submission(root, args.timeout, args.memory_mb,
                                                                  args.disable_layer, args.sandbox_uid)
            finally:   # also after a crash of the grader: nothing of the student's may outlive it
                if as_root:
                    swept = sweep_sandbox_uid(args.sandbox_uid)
    except Exception as exc:   # noqa: BLE001 -- the student still gets a results file that says so
        traceback.print_exc(file=sys.stdout)
        message = (f"the autograder itself failed ({type(exc).__name__}: {exc}); this is not your "
                   f"fault: tell the course staff")
        results, feedback = _not_graded("crashed", message)
        seen = {"layers": [], "warning": None, "crashed": True}
        try:   # what was found is still true (the finder is quick and reads nothing twice)
            found = find_submission(root / "submission")
        except Exception:   # noqa: BLE001 -- the finder itself failed: nothing to show
            found = None

    notes = found.notes if found is not None else ()
    common = (results, feedback, notes, args.visibility, time.monotonic() - start, seen["layers"],
              found.shown if found is not None else "")
    try:
        final = gradescope_results(*common, rubric=load_rubric(RUBRIC_PATH))
    except ValueError as exc:   # the grader's tests as they are: results.json is still written
        print(f"WARNING: {exc}")
        final = gradescope_results(*common)
    left_alive = swept[1] if swept is not None else []
    if left_alive:   # for the TA: the results may be unaffected, but the container was not clean
        final["extra_data"]["sweep_left_alive"] = left_alive
    path = write_results(results_dir, final)

    extra = final["extra_data"]
    score = f"{final['score']:g}/{extra['max_total']:g}, status {extra['status']}"
    if found is not None and found.source is not None:
        print(f"graded {found.shown}: {score}" + (" (the grader crashed)" if seen.get("crashed") else ""))
    elif found is not None:
        print(f"not graded{f' ({found.shown})' if found.shown else ''}: {score}: {found.problem}")
    else:
        print(f"not graded (the grader crashed before the file was found): {score}")
    for note in notes:
        print(f"note: {note}")
    ran = found is not None and found.source is not None and bool(seen["layers"]) and not seen.get("refused")
    for line in layer_report(seen, swept, args.sandbox_uid, as_root, ran):
        print(line)
    if kit_modes is not None:
        print("kit files: " + (f"could not be made root-only ({kit_modes['error']})" if "error" in kit_modes
                               else f"{kit_modes['closed']} root-only, {kit_modes['readable']} readable by "
                                    f"uid {args.sandbox_uid} (what student code imports)"))
    print(f"wrote {path} in {time.monotonic() - start:.1f} s")
    return 0


def misconfigured(results_dir: Path, problems: list[str]) -> int:
    """A bad setting (gradescope.json or an option): no student code runs; results.json says the
    autograder is misconfigured (score 0, a message for the staff) and the exit status is 0, as
    after every run that wrote results (Gradescope shows the student that message)."""
    said = "; ".join(problems)
    message = (f"the autograder is misconfigured, so your code was not graded; this is not your fault. "
               f"Course staff: {said} (fix {CONFIG_NAME} or run_autograder's options and regrade)")
    results, feedback = _not_graded("crashed", message)
    final = gradescope_results(results, feedback, visibility="visible",
                               execution_time=0.0, rubric=load_rubric(RUBRIC_PATH))
    final["extra_data"]["misconfigured"] = problems
    path = write_results(results_dir, final)
    print(f"MISCONFIGURED, no student code ran: {said}")
    print(f"wrote {path} (score 0, status crashed, a message for the staff)")
    return 0


def layer_report(seen: dict, swept: tuple[int, list[int]] | None, uid: int, as_root: bool,
                 ran: bool = True) -> list[str]:
    """What held, for the staff (stdout). ``ran``: whether student code ran at all."""
    lines = [] if ran else ["no student code ran"]
    if seen.get("refused"):
        lines.append(f"REFUSED, no student code ran: {seen['refused']}")
    if seen["layers"]:
        lines.append("sandbox layers that held: " + "; ".join(seen["layers"]))
    if seen.get("started_early"):
        lines.append("sandbox started before the grader was loaded (their torch imports overlapped)")
    if not as_root:
        lines.append("not run as root: student code ran as this same user (no uid drop, no sweep, "
                     "results/ not protected from it); on Gradescope it runs as root")
        return lines
    layers = seen["layers"]
    if any(layer.startswith(f"uid {uid} ") or (uid == NOBODY and layer == "uid nobody") for layer in layers):
        lines.append(f"student code ran as uid {uid}, never as root (the sandbox refuses instead)")
    elif layers:   # the sandbox said something else: say so rather than claim the drop
        lines.append(f"WARNING: the sandbox did not report running student code as uid {uid}")
    if ran:
        lines.append(f"results/ and its parent owned by uid {GUARD_UID} without group/other write while "
                     f"student code ran; results.json written afterwards by root, atomically")
    if swept is not None:
        count, left = swept
        lines.append(f"sweep of uid {uid} after grading: {count} process(es) found running and killed; "
                     + (f"WARNING: STILL ALIVE after every attempt: {left} (results.json says so under "
                        f"extra_data.sweep_left_alive)" if left else "none left"))
    return lines


if __name__ == "__main__":
    sys.exit(main())
