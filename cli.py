"""Run the nlp-rnn command line from a checkout: `python cli.py --help`."""
from nlp_rnn.cli import main

if __name__ == "__main__":
    main()
