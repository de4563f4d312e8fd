"""The thin commands of the ``aipo`` command line (:mod:`aipo.cli` lists them): each parses its
arguments, hands the work to the packages below, and turns bad input into one line."""
