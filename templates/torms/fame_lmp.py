#!/usr/bin/python3 -P
# fame: launcher for tm-librarian's monitoring server (lmp.py) on stock Debian
# (python3-flask 2.2, Python 3.11).
#
#   fame_lmp.py --tm_librarian DIR --db_file DB --host ADDR --port PORT [--fifo PATH]
#
# Imports the unmodified lmp.py from DIR/src as a module (its routes register
# on import) and runs its Flask app itself instead of lmp.py's __main__, which
# is where upstream does not fit fame:
#  * Templates: lmp.py names its app 'tm_lmp', a module that does not exist,
#    so Flask takes the working directory (lmp.py chdirs into src/) as the
#    app's root and looks for src/templates; the templates are in
#    DIR/templates (every HTML page answered 500 TemplateNotFound).
#  * Address: lmp_config.py hard-codes 0.0.0.0:31179. fame binds the torms
#    address on the node bridge and the configured port.
#  * The "Fabric %" FIFO of /fab/ was one fixed /tmp/fabfib.fifo for every
#    instance: here it is per stack (--fifo, default lmp.fifo beside the
#    database).
#  * /fab/ logs a FIFO read error through a module global upstream never sets
#    (AttributeError on None): it is set to the 'werkzeug' logger.
#  * A request without an Accept header (Python's urllib, curl -H 'Accept:')
#    crashed lmp.py's version check with KeyError (500): it is taken as
#    "Accept: */*", an HTML page.
# The database is opened read-only by lmp.py itself (SQLite3assist ro=True).

import argparse
import logging
import os
import sys


def parse(argv):
    p = argparse.ArgumentParser(prog="fame_lmp.py")
    p.add_argument("--tm_librarian", required=True, help="tm-librarian source tree")
    p.add_argument("--db_file", required=True, help="the Librarian's database")
    p.add_argument("--host", required=True, help="address to listen on (torms)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--fifo", help="lmp.py's /fab/ FIFO (default: lmp.fifo beside the database)")
    return p.parse_args(argv)


def load(tm_librarian):
    """lmp.py imported from DIR/src, its app pointed at DIR/templates."""
    src = os.path.join(tm_librarian, "src")
    templates = os.path.join(tm_librarian, "templates")
    for f in (os.path.join(src, "lmp.py"), os.path.join(templates, "show_global.html")):
        if not os.path.isfile(f):
            raise SystemExit("fame_lmp: %s is missing (tm-librarian source)" % f)
    sys.path[:] = [src] + [p for p in sys.path if p not in (src, "")]
    import lmp

    # The Jinja loader is made (and cached) at the first render: set before it.
    lmp.mainapp.template_folder = templates
    lmp.logger = logging.getLogger("werkzeug")

    def default_accept():
        lmp.request.environ.setdefault("HTTP_ACCEPT", "*/*")

    # Ahead of upstream's check_version, which reads the header.
    lmp.mainapp.before_request_funcs.setdefault(None, []).insert(0, default_accept)
    return lmp


def main(argv):
    args = parse(argv)
    if not os.path.isfile(args.db_file):
        raise SystemExit("fame_lmp: database %s does not exist" % args.db_file)
    # Absolute before the import: lmp.py changes the working directory.
    db = os.path.abspath(args.db_file)
    fifo = os.path.abspath(args.fifo or os.path.join(os.path.dirname(db), "lmp.fifo"))
    lmp = load(os.path.abspath(args.tm_librarian))
    lmp.mainapp.db_file = db
    try:
        lmp.piper(fifo)
    except Exception as e:
        raise SystemExit("fame_lmp: %s" % e)
    lmp.mainapp.run(host=args.host, port=args.port, debug=False, use_reloader=False, threaded=False)


if __name__ == "__main__":
    main(sys.argv[1:])
