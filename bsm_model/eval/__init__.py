"""The evaluation suite (``bsm eval``): paper §3 and appendix C on real data.

Modules, one concern each:

    tasks.py       task registry and the real datasets (splits, negatives, truncation)
    model_io.py    load a checkpoint, encode documents, batched log-likelihoods and hidden states
    perplexity.py  per-modality perplexity on a round's validation shards
    icl.py         Central Dogma few-shot in-context learning (k = 0, 1, 2, 4, 8)
    finetune.py    SFT with a classification / regression head over "<dna>…<sep><protein>…"
    zeroshot.py    zero-shot DMS fitness (mean log-likelihood, Spearman)
    baselines.py   non-neural baselines (k-mer features + logistic/ridge regression, n-gram LM,
                   wild-type Markov / BLOSUM62 zero-shot scores)
    metrics.py     accuracy, AUROC, MCC, F1, Spearman (scikit-learn / SciPy) and thresholds
    lucaone.py     LucaOne's downstream CSV layout (``--task-file``)
    report.py      results.json, results.md and the ICL curve plot
    cli.py         ``add_eval_parser(subparsers)``: ``bsm eval --checkpoint RUN --task NAME``
"""
