"""What the command-line entry points share: absl flags, each error told in one line."""

import logging
import os
import sys

from absl import app, flags

FLAGFILE_PREFIXES = ("--flagfile=", "-flagfile=")


def flagfile_cycle(argv):
    """The first flagfile that includes itself, directly or through others; None if none does.

    absl skips such a file with a warning and goes on, so the command would run without the
    settings the file was meant to give (for tltransfer.main: the whole default study).
    """
    def visit(path, chain):
        real = os.path.realpath(path)
        if real in chain:
            return path
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            return None  # absl says that it cannot be opened
        for line in lines:
            line = line.strip()
            if line.startswith(FLAGFILE_PREFIXES):
                found = visit(line.split("=", 1)[1], chain | {real})
                if found:
                    return found
        return None
    for arg in argv[1:]:
        if arg.startswith(FLAGFILE_PREFIXES):
            found = visit(arg.split("=", 1)[1], frozenset())
            if found:
                return found
    return None


def parse_flags(argv):
    """absl's parsing, but an error is one line naming the flag or file, then exit 1.

    absl's own handler prints a FATAL line and a pointer to the help, or for a usage error the
    whole help text; `--help` still prints the whole help.
    """
    cycle = flagfile_cycle(argv)
    if cycle:
        sys.exit(f"error: --flagfile={cycle} includes itself; remove the --flagfile line that "
                 "leads back to it")
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        message = " ".join(str(e).split()).removeprefix("ERROR:: ")
        files = [a.split("=", 1)[1] for a in argv[1:] if a.startswith(FLAGFILE_PREFIXES)]
        where = f" (flags read from {', '.join(files)} and the command line)" if files else ""
        sys.exit(f"error: {message}{where}; fix it, or see --help for the flags")


def plural(count, noun):
    """'1 run', '2 runs'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def run(main, quick_exit=False):
    """app.run(main) with one-line flag errors, and, if asked, a quick exit.

    With `quick_exit`, once main has returned or exited, its files closed and its streams
    flushed, the process ends without the interpreter's teardown: with TensorFlow loaded that
    teardown takes most of a second and saves nothing. Only the training entry point asks for
    it: its runs close their summary writers however they end. An uncaught exception still
    ends the usual way, with its traceback.
    """
    if not quick_exit:
        return app.run(main, flags_parser=parse_flags)
    try:
        app.run(main, flags_parser=parse_flags)
    except SystemExit as e:
        code = e.code
    else:
        code = 0
    if isinstance(code, str):  # sys.exit("error: ..."): the message, and status 1
        print(" ".join(code.split()), file=sys.stderr)  # one line, whatever it quotes
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
