"""Training methods, one small file each, saying only what is special about the method.

    simclr      encoder + projection head, two augmented views, NT-Xent
    supervised  the cross-entropy baseline the self-supervised methods are compared with
    clip        image and text encoders in one space, symmetric InfoNCE

The shared fit loop lives once, in `contrastive_lab.train.fit`.
"""
