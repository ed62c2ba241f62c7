/**
 * The Librarian's book layout, as FAME computed it: books start at 8 MiB and
 * double while the FAM would hold more than 10000 of them; each node gets an
 * equal share (integer division), and `book_register` reads it from this INI.
 */
import { MiB } from "./units";

export const FIRST_BOOK_BYTES = 8 * MiB;
export const MAX_BOOKS = 10000;

export interface BookLayout {
  bookBytes: number;
  totalBooks: number;
  booksPerNode: number;
  /** Books no node gets because the count does not divide evenly. */
  unusedBooks: number;
}

export function bookLayout(famBytes: number, nodes: number): BookLayout {
  if (!Number.isSafeInteger(nodes) || nodes < 1)
    throw new RangeError(`node count ${nodes} must be at least 1`);
  let bookBytes = FIRST_BOOK_BYTES;
  while (famBytes / bookBytes > MAX_BOOKS) bookBytes *= 2;
  const totalBooks = Math.floor(famBytes / bookBytes);
  const booksPerNode = Math.floor(totalBooks / nodes);
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
