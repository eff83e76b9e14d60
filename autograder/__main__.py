"""Command line: python -m autograder {release,grade,report,demo} ...

  release [LESSON ...] [--out DIR]     regenerate course/ (or DIR) from solutions/; warns when
                                       lessons released together hand out each other's graded
                                       answers (each lesson's recap restates earlier answers)
  grade INBOX --workdir DIR [--workers N]
                                       grade INBOX/<student>/<lesson>/*.ipynb, N notebooks at a
                                       time (default: one per core), each in a sandbox; writes
                                       DIR/grades.csv, DIR/verdicts.csv and
                                       DIR/feedback/<student>/<lesson>/*.html
  grade INBOX --workdir DIR --student NAME
                                       regrade one student of INBOX; their rows replace
                                       theirs in DIR/grades.csv, every other row is kept
  grade my_course --as-student me --workdir grading/me
                                       grade one learner's own working copy
  report DIR [--out PATH]              the class report of a graded DIR: which named mistakes
                                       how many learners made on each piece, scores, who handed
                                       in what; writes DIR/report.html and prints a summary
  demo --workdir DIR                   build a small demo class, grade it, write its report
"""
import argparse
import shutil
import sys
import time
from pathlib import Path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rel = sub.add_parser("release", help="regenerate course/ from solutions/")
    rel.add_argument("lessons", nargs="*", help="default: every lesson")
    rel.add_argument("--out", help="write the lessons to this folder instead of course/")
    gr = sub.add_parser("grade", help="autograde a class")
    gr.add_argument("inbox")
    gr.add_argument("--workdir", required=True)
    gr.add_argument("--lessons", nargs="*", help="default: every lesson found in the inbox")
    gr.add_argument("--as-student", metavar="NAME",
                    help="INBOX is one learner's folder of lessons (e.g. my_course)")
    gr.add_argument("--student", metavar="NAME",
                    help="regrade only INBOX/NAME and merge its rows into DIR/grades.csv")
    gr.add_argument("--workers", type=int, default=None,
                    help="notebooks graded at once (default: one per core)")
    rep = sub.add_parser("report", help="the class report of a graded workspace")
    rep.add_argument("workdir", help="the --workdir of the grading (holds grades.csv, verdicts.csv)")
    rep.add_argument("--out", help="where to write the page (default: WORKDIR/report.html)")
    demo = sub.add_parser("demo", help="grade a small demo class")
    demo.add_argument("--workdir", default="grading/demo")
    args = parser.parse_args(argv)

    if args.command == "report":
        from autograder import class_report
        try:
            path, text = class_report.write(args.workdir, args.out)
        except class_report.ReportError as e:
            print(f"no report: {e}", file=sys.stderr)
            return 2
        print(text)
        print(f"\nThe class report: {path}")
        return 0
    from autograder import grading  # (the report above needs none of the grading machinery)
    try:
        if args.command == "release":
            from autograder import recaps
            from autograder.submissions import lessons
            unknown = [name for name in args.lessons if name not in lessons()]
            if unknown:
                print(f"release failed: no lesson {', '.join(map(repr, unknown))} in solutions/: "
                      f"the lessons are {', '.join(lessons())}", file=sys.stderr)
                return 2
            out = Path(args.out) if args.out else grading.RELEASE
            done = grading.release(args.lessons or None, out=out)
            print(f"{args.out or 'course/'} regenerated from solutions/: {', '.join(done)}")
            warning = recaps.warning(done, whole_course=not args.lessons)
            if warning:
                print(warning, file=sys.stderr)
            return 0
        if args.command == "demo":
            from autograder.demo import build_class
            work = Path(args.workdir)
            shutil.rmtree(work, ignore_errors=True)
            inbox = build_class(work / "inbox")
            args.inbox, args.lessons, args.as_student, args.workers = inbox, None, None, None
            args.student = None
        start = time.perf_counter()
        if args.student and args.as_student:
            raise grading.GradingError("--student picks a student of a class inbox; "
                                       "--as-student names the one learner of a working copy")
        rows = grading.grade(args.inbox, args.workdir, args.lessons, args.as_student,
                             workers=args.workers, student=args.student)
    except grading.GradingError as e:
        print(f"grading failed: {e}", file=sys.stderr)
        return 2
    work = Path(args.workdir)
    print(grading.summary(rows))
    ran = sum(r.status.startswith("graded") for r in rows)
    print(f"\n{len(rows)} student x lesson rows, {ran} notebooks run, "
          f"in {time.perf_counter() - start:.1f} s. "
          f"Grades: {work / 'grades.csv'}; feedback: {work / 'feedback'}/<student>/<lesson>/")
    if args.command == "demo":
        from autograder import class_report
        path, _ = class_report.write(work)
        print(f"The class report (which named mistakes, how many learners): {path}")
    else:
        print(f"The class report: python -m autograder report {args.workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
