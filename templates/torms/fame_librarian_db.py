#!/usr/bin/python3
# fame: facts about a Librarian database, read-only, as JSON.
#   fame_librarian_db.py info <db>
# {"book_size_bytes", "nvm_bytes_total", "nodes", "books", "allocated_books",
#  "files", "directories"}: files are non-directory shelves, directories the
#  user's own (not ".", "lost+found" or the internal "garbage" shelf).
import json
import sqlite3
import sys

S_IFMT, S_IFDIR = 0o170000, 0o040000


def info(db):
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    book, total = c.execute("SELECT book_size_bytes, nvm_bytes_total FROM globals").fetchone()
    nodes = c.execute("SELECT COUNT(*) FROM FRDnodes").fetchone()[0]
    books = c.execute("SELECT COUNT(*) FROM books").fetchone()[0]
    allocated = c.execute("SELECT COUNT(*) FROM books WHERE allocated != 0").fetchone()[0]
    files = dirs = 0
    for name, mode, parent in c.execute("SELECT name, mode, parent_id FROM shelves"):
        if name == "garbage" and parent == 0:
            continue
        if (mode & S_IFMT) == S_IFDIR:
            if name not in (".", "lost+found"):
                dirs += 1
        else:
            files += 1
    return {
        "book_size_bytes": book,
        "nvm_bytes_total": total,
        "nodes": nodes,
        "books": books,
        "allocated_books": allocated,
        "files": files,
        "directories": dirs,
    }


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "info":
        raise SystemExit("usage: fame_librarian_db.py info <db>")
    print(json.dumps(info(sys.argv[2])))
