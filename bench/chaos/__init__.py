"""The chaos campaign: the whole system under a nemesis, then a checker (issue 9).

    python -m bench.chaos [--seed N] [--duration S] [--engine mariadb|embedded]
                          [--faults a,b,c] [--report FILE]

See docs/reliability.md.
"""
