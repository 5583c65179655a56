"""The repository stands on its own: every docs/ section the code and docs cite exists, and nothing
refers to files outside the repository."""
import re

from icl.config import REPO_ROOT

TEXT_FILES = [p for pattern in ('icl/**/*.py', 'tests/**/*.py', 'benchmarks/*', 'configs/*.py', 'docs/*.md',
                                '*.md', '*.py', 'Makefile', '.ci/*') for p in REPO_ROOT.glob(pattern) if p.is_file()]
CITATION = re.compile(r'(?:docs/)?(behaviour|data)\.md#([a-z0-9-]+)')


def anchors(doc: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    text = (REPO_ROOT / 'docs' / f'{doc}.md').read_text(encoding='utf-8')
    return {re.sub(r'[^a-z0-9 -]', '', line.lstrip('#').strip().lower()).replace(' ', '-')
            for line in text.splitlines() if line.startswith('#')}


def test_every_cited_docs_section_exists():
    cited = {(doc, anchor, path.relative_to(REPO_ROOT).as_posix())
             for path in TEXT_FILES for doc, anchor in CITATION.findall(path.read_text(encoding='utf-8'))}
    assert cited  # the pattern finds the citations at all
    assert sorted(c for c in cited if c[1] not in anchors(c[0])) == []


def test_anchors_follow_githubs_rule():
    assert {'draws', 'class-name-variants', 'quirks-kept-on-purpose'} <= anchors('behaviour')
    assert 'where-to-obtain-the-original-files' in anchors('data')


OUTSIDE = re.compile(r'SPEC\.md|\.\./shared|shared/data|/work/')


def test_nothing_refers_to_files_outside_the_repository():
    allowed = {'.ci/run', 'tests/test_docs.py'}  # CI says where its copy of the data lives; this test names them
    found = sorted(f'{path.relative_to(REPO_ROOT).as_posix()}:{number}'
                   for path in TEXT_FILES if path.relative_to(REPO_ROOT).as_posix() not in allowed
                   for number, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1)
                   if OUTSIDE.search(line))
    assert found == []
