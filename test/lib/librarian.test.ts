import * as assert from "node:assert/strict";
import { bookLayout, librarianIni } from "../../lib/librarian";

const GiB = 2 ** 30;
const MiB = 2 ** 20;

describe("Librarian INI", () => {
  it("matches FAME's check values", () => {
    assert.equal(
      librarianIni(16 * GiB, 4),
      "[global]\nnode_count = 4\nbook_size_bytes = 8M\nnvm_size_per_node = 512B\n",
    );
    assert.equal(
      librarianIni(32 * GiB, 4),
      "[global]\nnode_count = 4\nbook_size_bytes = 8M\nnvm_size_per_node = 1024B\n",
    );
  });

  it("doubles the book size while there would be more than 10000 books", () => {
    // 64G / 8M = 8192 books: still 8M. 128G / 8M = 16384 > 10000 -> 16M (8192 books).
    assert.deepEqual(bookLayout(64 * GiB, 1), {
      bookBytes: 8 * MiB,
      totalBooks: 8192,
      booksPerNode: 8192,
      unusedBooks: 0,
    });
    assert.deepEqual(bookLayout(128 * GiB, 8), {
      bookBytes: 16 * MiB,
      totalBooks: 8192,
      booksPerNode: 1024,
      unusedBooks: 0,
    });
    assert.equal(bookLayout(256 * GiB, 1).bookBytes, 32 * MiB);
    assert.equal(bookLayout(GiB, 1).bookBytes, 8 * MiB);
  });

  it("divides books evenly and reports what rounding loses when the node count is not a power of two", () => {
    // 16G = 2048 books of 8M; 3 nodes get 682 each, 2 books unused.
    assert.deepEqual(bookLayout(16 * GiB, 3), {
      bookBytes: 8 * MiB,
      totalBooks: 2048,
      booksPerNode: 682,
      unusedBooks: 2,
    });
    assert.equal(
      librarianIni(16 * GiB, 3),
      "[global]\nnode_count = 3\nbook_size_bytes = 8M\nnvm_size_per_node = 682B\n",
    );
    assert.equal(bookLayout(GiB, 253).booksPerNode, 0);
    assert.equal(bookLayout(GiB, 5).unusedBooks, 128 % 5);
  });

  it("refuses a node count below one", () => {
    assert.throws(() => bookLayout(GiB, 0), RangeError);
  });
});
