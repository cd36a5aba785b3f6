"""Mirror the files git would ship from a work tree into another directory.

Usage: python tests/sanity/sync_tree.py SRC DEST [--exclude PREFIX ...]

The file list is ``git ls-files --cached --others --exclude-standard`` of SRC minus the
files deleted from the work tree: exactly what ansible-test sees in a checkout. Like
``rsync -a --delete``, files whose size or mtime differ are copied (mtime kept),
symlinks are recreated as symlinks, and anything in DEST that is not in the list is
removed, except DEST/.git and ansible-test's DEST/tests/output. Prints one summary line.
"""

import argparse
import os
import shutil
import subprocess
import sys

KEEP = ('.git', os.path.join('tests', 'output'))


def git_files(src, excludes):
    """Return the sorted relative paths git would list for a checkout of src."""
    def ls(*args):
        out = subprocess.run(('git', '-C', src, 'ls-files', '-z') + args,
                             check=True, stdout=subprocess.PIPE).stdout
        return {p for p in out.decode('utf-8', 'surrogateescape').split('\0') if p}

    paths = ls('--cached', '--others', '--exclude-standard') - ls('--deleted')
    return sorted(p for p in paths
                  if not any(p == e or p.startswith(e.rstrip('/') + '/') for e in excludes)
                  and os.path.lexists(os.path.join(src, p)))


def same(src, dst):
    """Return True when dst already mirrors src (type, target or size and mtime)."""
    try:
        d = os.lstat(dst)
    except FileNotFoundError:
        return False
    s = os.lstat(src)
    if os.path.islink(src):
        return os.path.islink(dst) and os.readlink(src) == os.readlink(dst)
    return (not os.path.islink(dst) and os.path.isfile(dst) and s.st_size == d.st_size
            and int(s.st_mtime) == int(d.st_mtime) and s.st_mode == d.st_mode)


def remove(path):
    """Remove a file, symlink or directory tree."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def main():
    """Synchronise DEST with the file list of SRC."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src')
    parser.add_argument('dest')
    parser.add_argument('--exclude', action='append', default=[], help='path prefix to leave out')
    args = parser.parse_args()

    src = os.path.abspath(args.src)
    dest = os.path.abspath(args.dest)
    wanted = git_files(src, args.exclude)
    wanted_set = set(wanted)
    wanted_dirs = {os.path.dirname(p) for p in wanted}
    for p in list(wanted_dirs):
        while p:
            p = os.path.dirname(p)
            wanted_dirs.add(p)

    removed = 0
    for root, dirs, files in os.walk(dest, topdown=True):
        rel = os.path.relpath(root, dest)
        rel = '' if rel == '.' else rel
        for name in list(dirs):
            relpath = os.path.join(rel, name)
            if relpath in KEEP:
                dirs.remove(name)
            elif relpath not in wanted_dirs or os.path.islink(os.path.join(root, name)):
                if relpath not in wanted_set:
                    remove(os.path.join(root, name))
                    removed += 1
                dirs.remove(name)
        for name in files:
            relpath = os.path.join(rel, name)
            if relpath not in wanted_set:
                os.unlink(os.path.join(root, name))
                removed += 1

    copied = 0
    for relpath in wanted:
        s = os.path.join(src, relpath)
        d = os.path.join(dest, relpath)
        if same(s, d):
            continue
        os.makedirs(os.path.dirname(d), exist_ok=True)
        if os.path.lexists(d):
            remove(d)
        if os.path.islink(s):
            os.symlink(os.readlink(s), d)
        else:
            shutil.copy2(s, d)
        copied += 1

    sys.stdout.write('sync: %d files, %d copied, %d removed -> %s\n' % (len(wanted), copied, removed, dest))


if __name__ == '__main__':
    main()
