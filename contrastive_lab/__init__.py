"""Contrastive Lab: the helper package behind the course notebooks.

One module per idea, so a learner can guess where things live:

    profiles   quick / full settings          device    device choice, seeding
    data       datasets (offline and real)    augment   batched per-image augmentations
    models     encoders, heads, embed         losses    contrastive losses
    mining     triplet miners                 train     the one fit loop
    evaluate   k-NN, Recall@K, probes         viz       plots
    preflight  can this machine run it?       exercises self-checks for the notebooks
    export     ship an encoder (head dropped, normalised, versioned)
    index      faiss vector index with its model version and measurements
    monitoring anomaly scores, drift tests    checklist the production checklist as code
    production notebook 12's settings and data builders
    distributed several processes (torchrun): gather with gradient, rank-offset losses, shards
    cli        python -m contrastive_lab.cli train METHOD (one process or torchrun)
    scaling    notebook 13's settings and launcher
"""
__version__ = "0.1.0"
