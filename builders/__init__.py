"""``datasets`` builders for every instruction source and every generated split, installed as
``lamini_lm.builders``. One module per dataset, each a ``GeneratorBasedBuilder`` with its card template."""
