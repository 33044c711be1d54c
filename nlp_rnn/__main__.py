"""`python -m nlp_rnn` runs the CLI (this is also what `torchrun -m nlp_rnn` starts)."""
from nlp_rnn.cli import main

main()
