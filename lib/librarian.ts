/**
 * The Librarian's book layout, as FAME computed it: books start at 8 MiB and
 * double while the FAM would hold more than 10000 of them; each node gets an
 * equal share, and `book_register` reads it from this INI.
 *
 * The real tm-librarian `book_register.py` (with `frdnode.py`) also demands:
 * a book size that is a power of two from 2M to 8G, books per node a whole
 * number and a multiple of 4 (one module per media controller, four per node),
 * at most 8192 books per node, and at most 80 nodes. fame therefore rounds
 * books per node down to a multiple of 4; what rounding leaves over is
 * reported as unused books.
 */
import { formatSize, MiB } from "./units";

export const FIRST_BOOK_BYTES = 8 * MiB;
export const MAX_BOOKS = 10000;
/** book_register: books per node must be a multiple of this (four media controllers). */
export const BOOKS_PER_NODE_MULTIPLE = 4;
/** book_register (frdnode.py): 13 bits of book number per node. */
export const BOOK_REGISTER_MAX_BOOKS_PER_NODE = 8192;
/** book_register (frdnode.py asserts node ids 1..80). */
export const BOOK_REGISTER_MAX_NODES = 80;
/** lfs_fuse.py derives its node number from a MAC of equal octets only for 01..40. */
export const LFS_MAC_MAX_NODE = 40;

export interface BookLayout {
  bookBytes: number;
  totalBooks: number;
  /** A multiple of 4, at most 8192. */
  booksPerNode: number;
  /** Books no node gets: the count does not divide evenly, or rounding to a multiple of 4. */
  unusedBooks: number;
}

export function bookLayout(famBytes: number, nodes: number): BookLayout {
  if (!Number.isSafeInteger(nodes) || nodes < 1)
    throw new RangeError(`node count ${nodes} must be at least 1`);
  let bookBytes = FIRST_BOOK_BYTES;
  while (famBytes / bookBytes > MAX_BOOKS) bookBytes *= 2;
  const totalBooks = Math.floor(famBytes / bookBytes);
  const share = Math.min(Math.floor(totalBooks / nodes), BOOK_REGISTER_MAX_BOOKS_PER_NODE);
  const booksPerNode = share - (share % BOOKS_PER_NODE_MULTIPLE);
  return { bookBytes, totalBooks, booksPerNode, unusedBooks: totalBooks - booksPerNode * nodes };
}

/** The INI `book_register -d /var/hpetm/librarian.db <ini>` reads. */
export function librarianIni(famBytes: number, nodes: number): string {
  const l = bookLayout(famBytes, nodes);
  return [
    "[global]",
    `node_count = ${nodes}`,
    `book_size_bytes = ${l.bookBytes / MiB}M`,
    `nvm_size_per_node = ${l.booksPerNode}B`,
    "",
  ].join("\n");
}

/** What the user should know about the Librarian for this FAM size and node count (preview warnings). */
export function librarianWarnings(famBytes: number, nodes: number): string[] {
  const l = bookLayout(famBytes, nodes);
  const out: string[] = [];
  if (nodes > BOOK_REGISTER_MAX_NODES) {
    out.push(
      `${nodes} nodes: the Librarian (book_register) supports at most ${BOOK_REGISTER_MAX_NODES} nodes, so no Librarian can serve this cluster; the INI is written but book_register will refuse it`,
    );
  }
  if (nodes > LFS_MAC_MAX_NODE) {
    out.push(
      `node${LFS_MAC_MAX_NODE + 1} and above: the LFS daemon (lfs_fuse.py) finds its node number from the MAC only for nodes 01..${LFS_MAC_MAX_NODE}; start it with --physloc on those nodes`,
    );
  }
  if (l.booksPerNode === 0) {
    out.push(
      `${l.totalBooks} Librarian books of ${formatSize(l.bookBytes)} for ${nodes} nodes leave 0 books per node (book_register needs a multiple of ${BOOKS_PER_NODE_MULTIPLE}): grow fame:famSize or use fewer nodes to use LFS`,
    );
  } else if (l.unusedBooks > 0) {
    out.push(
      `${l.totalBooks} Librarian books of ${formatSize(l.bookBytes)} do not divide among ${nodes} nodes in multiples of ${BOOKS_PER_NODE_MULTIPLE}: each node gets ${l.booksPerNode}, ${l.unusedBooks} book(s) (${formatSize(l.unusedBooks * l.bookBytes)}) stay unused`,
    );
  }
  return out;
}
