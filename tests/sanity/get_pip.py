"""Offline stand-in for ansible-test's get-pip bootstrap script.

ansible-test (``_util/target/setup/requirements.py:bootstrap``) runs
``~/.ansible/test/cache/get_pip_<pip version>.py`` inside every virtual environment it
creates, and downloads that script from a host outside the package registries when it is
missing. tests/sanity/run.sh installs this file under that name instead, so nothing but
PyPI (through pip, as configured on the machine) is ever contacted.

What it does, in the venv whose Python runs it:
1. ``python -m ensurepip`` installs the pip wheel bundled with CPython (no network);
2. copies the pip settings that run.sh captured from the caller's environment
   (ansible-test strips ``PIP_*`` and proxy variables) into ``<venv>/pip.conf``, so
   every later pip call in this venv reaches the same index;
3. ``python -m pip install <args>`` with get-pip's own arguments (pip==X.Y and
   ``--disable-pip-version-check``), minus the get-pip-only ``--no-setuptools`` and
   ``--no-wheel``, which are honoured by uninstalling what ensurepip added.

Each step runs in a child process: ensurepip rewrites the environment of the process
that calls it (``PIP_CONFIG_FILE=/dev/null``), which would hide the pip configuration.
"""

import os
import shutil
import subprocess
import sys

GET_PIP_ONLY = ('--no-setuptools', '--no-wheel', '--no-pip')
PIP_CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'deckhouse_platform_pip.conf')


def run(*args):
    """Run the venv's Python with args and stop on failure."""
    env = dict(os.environ)
    env.pop('PIP_CONFIG_FILE', None)
    subprocess.check_call((sys.executable,) + args, env=env)


def installed(name):
    """Return True when the distribution name is importable in this venv."""
    code = 'import importlib.util, sys; sys.exit(importlib.util.find_spec(%r) is None)' % name
    return subprocess.call((sys.executable, '-c', code)) == 0


def main():
    """Bootstrap pip in sys.prefix, then install what get-pip was asked to install."""
    argv = sys.argv[1:]
    args = [a for a in argv if a not in GET_PIP_ONLY]
    had = {name: installed(name) for name in ('setuptools', 'wheel')}

    run('-m', 'ensurepip', '--default-pip')

    if os.path.isfile(PIP_CONF) and sys.prefix != sys.base_prefix:
        shutil.copyfile(PIP_CONF, os.path.join(sys.prefix, 'pip.conf'))

    if args:
        run('-m', 'pip', 'install', *args)

    unwanted = [name for name in ('setuptools', 'wheel')
                if '--no-%s' % name in argv and not had[name] and installed(name)]
    if unwanted:
        run('-m', 'pip', 'uninstall', '--yes', '--quiet', '--disable-pip-version-check', *unwanted)


if __name__ == '__main__':
    main()
