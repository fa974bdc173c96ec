"""The thesis sentences (Balles chs. 4–5, App. B) that the Tier B claims of
:mod:`experiments.reproduce_balles_tier_b` and its smoke records quote."""

QUOTE_42 = ("On SVHN, CIFAR-10 and CIFAR-100, CABS yields significantly faster "
            "decrease in training loss with the curve continuously lying below "
            "all others. It also achieves the best test set accuracy of all "
            "methods on all three problems.")
QUOTE_42_MNIST = ("CABS outperforms competing method on three out of the four "
                  "problems.")
QUOTE_43 = ("The curves for different step sizes cluster much more closely "
            "together when adapting the batch size with CABS.")
QUOTE_SIGN = ("Considering only training loss, the two sign-based methods "
              "clearly outperform the two non-sign-based methods on problems "
              "(P1) and (P3).")
QUOTE_P2 = ("On (P2), ADAM and M-SIGN-SGD make rapid initial progress, but "
            "later plateau and are undercut by M-SGD and M-SVAG.")
QUOTE_P4 = ("On the language modelling task (P4) the non-sign-based methods "
            "show superior performance.")
QUOTE_VA = ("In all experiments, the variance-adapted variants perform at "
            "least as good as, and often better than, their “base "
            "algorithms”.")
QUOTE_B2_P2 = "We observe that SVAG performs better than M-SVAG on (P2)."
QUOTE_B2_P3 = ("On (P3), it makes faster initial progress but later plateaus, "
               "leading to slightly worse outcomes in both training loss and "
               "test accuracy.")
QUOTE_B2_ADAM = "In the CIFAR-100 example (P3) the two methods are on par."
QUOTE_B2_ADAM_P2 = ("ADAM* quickly catches up and reaches lower minimal "
                    "training loss values.")
QUOTE_B3 = ("We tested the minibatch variant of M-SVAG on the problems (P1) "
            "and (P2) from the main text and compared it to the moving "
            "average version. […] The two algorithms have almost identical "
            "performance.")
