"""Contrastive Lab: the helper package behind the course notebooks.

One module per idea, so a learner can guess where things live. From the bottom floor up
(a module uses the floors below it, never the ones above):

    validate       input checks whose errors name the fix
    device         device choice, seeding, counting host syncs
    profiles       quick / full settings: one notebook, two scales
    augment        batched augmentations with per-image random parameters, on the device
    images         image tensors as the course keeps them: float in [0, 1], or uint8
    train          the one fit loop: progress line, schedules, checkpoints
    models         encoders, projection heads, embed
    atomic         files written whole or not at all
    integrity      the files this package writes, read back checked
    code_version   the version of the code a trained model depends on
    text/          tokenizers, a docstring corpus, BM25 / TF-IDF, hybrid ranking, the bi-encoder

    losses         contrastive losses, each a plain function of tensors
    evaluate/      k-NN, Recall@K, the linear probe, nDCG / MRR, ROC / EER, one-call tables
    data/          datasets: offline sets, real downloads, glyph identities, your own folders
    monitoring     anomaly scores and drift tests after deployment
    index          faiss vector index with its model version and measurements
    export         ship an encoder (head dropped, normalised, versioned)
    distributed    several processes (torchrun): gather with gradient, rank-offset losses, shards
    model_cache    train once, load afterwards (keyed by the settings and the code)
    spread         effects measured over seeds: a difference that holds on every seed, or a tie
    tensor_cache   compute once, load afterwards: a frozen encoder's embeddings of a corpus

    mining         triplet miners
    diagnose       collapse meters and a diagnosis of training failures
    methods/       one small file per training method (SimCLR, MoCo, BYOL, VICReg, SupCon,
                   CLIP, Sentence-BERT, the masked autoencoder …) and the shared models
    checklist      the production checklist as code
    production     notebooks 12 and 13's settings, data builders and the service they ship
    scaling        notebook 14's settings and launcher
    cli            python -m contrastive_lab.cli train METHOD (one process or torchrun)

Apart:

    viz            plots
    preflight      can this machine run the course?
    course_timings how long each notebook takes, measured (the notes and the pre-flight read it)
    exercises/     self-checks for the notebooks, one module per notebook

The maintainers' notebook tools (execute, the student copy, Colab copies) live beside the
package, in tools/.
"""
__version__ = "0.1.0"
