"""The dump stream splitter and the per-table count and hash, whatever the read sizes."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st

from cells_backup.database.dumphash import DataDigest
from cells_backup.database.dumpsplit import TRAILER, Marker, pieces

HEADER = (
    b"-- MariaDB dump 10.19\n--\n-- Host: 127.0.0.1    Database: cells\n-- ---\n\n"
    b"/*!40101 SET NAMES utf8mb4 */;\n\n"
)
END = TRAILER + b"\n/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;\n\n-- Dump completed\n"


def table_section(rows: list[bytes]) -> bytes:
    body = b"\n/*!40101 SET character_set_client = utf8mb4 */;\nCREATE TABLE `t` (\n  `a` text\n);\n\n"
    body += b"--\n-- Dumping data for table `t`\n--\n\n"
    if rows:
        body += b"INSERT INTO `t` VALUES\n" + b",\n".join(rows) + b";\n"
    return body + b"\n"


def marker_text(name: str) -> bytes:
    return b"--\n-- Table structure for table `" + name.replace("`", "``").encode() + b"`\n--\n"


def split(stream: bytes, sizes: list[int]) -> list[tuple[bytes, Marker | None]]:
    """Run the splitter with reads of the given sizes; merge adjacent content pieces."""
    src = io.BytesIO(stream)
    it = iter(sizes)

    def read(_n: int) -> bytes:
        return src.read(next(it, 1 << 20))

    out: list[tuple[bytes, Marker | None]] = []
    for content, marker in pieces(read):
        if marker is None and out and out[-1][1] is None:
            out[-1] = (out[-1][0] + content, None)
        else:
            out.append((content, marker))
    return out


row = st.builds(
    lambda n, s: b"(" + str(n).encode() + b",'" + s + b"')",
    st.integers(),
    st.binary(max_size=40).map(lambda b: b.replace(b"\\", b"\\\\").replace(b"'", b"\\'").replace(b"\n", b"\\n")),
)
names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\x00"), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    tables=st.lists(st.tuples(names, st.lists(row, max_size=30)), min_size=1, max_size=4),
    sizes=st.lists(st.integers(1, 300), max_size=200),
)
def test_sections_and_counts_do_not_depend_on_read_sizes(tables, sizes):
    stream = HEADER
    view = b"--\n-- Temporary table structure for view `v`\n--\n\nCREATE VIEW x;\n\n"
    for name, rows in tables:
        stream += marker_text(name) + table_section(rows)
    stream += view + END
    got = split(stream, sizes)
    assert got[0] == (HEADER, None)
    pos = 1
    for name, rows in tables:
        assert got[pos] == (b"", Marker("table", name))
        content = got[pos + 1][0]
        assert content == table_section(rows)
        digest = DataDigest()
        digest.update(content)
        assert digest.rows == len(rows) and digest.complete
        pos += 2
    assert got[pos] == (b"", Marker("skip"))
    assert got[pos + 2] == (b"", Marker("trailer"))
    assert got[pos + 3][0].endswith(b"-- Dump completed\n")


def test_the_hash_covers_the_rows_not_the_table_structure():
    a, b = DataDigest(), DataDigest()
    a.update(table_section([b"(1,'x')", b"(2,'y')"]))
    b.update(table_section([b"(1,'x')", b"(2,'y')"]).replace(b"`a` text", b"`a` mediumtext"))
    assert (a.rows, a.hexdigest()) == (b.rows, b.hexdigest()) == (2, a.hexdigest())
    c = DataDigest()
    c.update(table_section([b"(1,'x')", b"(2,'z')"]))
    assert c.hexdigest() != a.hexdigest()


def test_a_cut_statement_is_incomplete_and_many_rows_per_line_are_counted():
    cut = DataDigest()
    cut.update(b"INSERT INTO `t` VALUES\n(1,'a'),\n")
    assert not cut.complete
    old_style = DataDigest()
    old_style.update(b"INSERT INTO `t` VALUES (1,'a),(b'),(2,'c');\nINSERT INTO `t` VALUES (3,NULL);\n\n")
    assert old_style.rows == 3 and old_style.complete


def test_a_stream_cut_mid_line_ends_without_a_marker():
    stream = HEADER + marker_text("t") + b"INSERT INTO `t` VALUES\n(1,'a'),\n(2,'b"
    got = split(stream, [7] * 100)
    assert got[-1][1] is None and got[-1][0].endswith(b"(2,'b")


def test_row_data_that_looks_like_markers_or_statement_ends_stays_in_its_table():
    tricky = [
        b"(1,'a);b')",
        b"(2,');')",
        b"(3,'x\\n--\\n-- Table structure for table `evil`\\n--\\n')",
        b"(4,'/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;')",
        b"(5,'INSERT INTO `t` VALUES\\n(9);')",
    ]
    partitioned_empty = (
        b"\nCREATE TABLE `p` (\n  `id` int NOT NULL\n)\n/*!50100 PARTITION BY RANGE (`id`)\n"
        b"(PARTITION `p0` VALUES LESS THAN (10) ENGINE = InnoDB,\n PARTITION `p1` VALUES LESS THAN MAXVALUE"
        b" ENGINE = InnoDB) */;\n\n--\n-- Dumping data for table `p`\n--\n\n"
    )
    one_line = b"\nCREATE TABLE `o` (`a` int);\n\nINSERT INTO `o` VALUES (1),(2);\nINSERT INTO `o` VALUES (3);\n\n"
    stream = (HEADER + marker_text("t") + table_section(tricky) + marker_text("p") + partitioned_empty
              + marker_text("o") + one_line + marker_text("u") + table_section([b"(7,'z')"]) + END)
    for sizes in ([1 << 20], [3] * 2000, [17, 1, 250] * 200):
        got = split(stream, sizes)
        assert [m for _, m in got if m is not None] == [
            Marker("table", "t"), Marker("table", "p"), Marker("table", "o"), Marker("table", "u"), Marker("trailer")]
        contents = [c for c, m in got if m is None]
        assert contents[1:5] == [table_section(tricky), partitioned_empty, one_line, table_section([b"(7,'z')"])]
        digest = DataDigest()
        digest.update(contents[1])
        assert digest.rows == len(tricky) and digest.complete
