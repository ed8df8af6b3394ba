"""viz.plot_heatmap: a grid of numbers drawn as colours, every number printed in its cell."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from contrastive_lab.viz import plot_heatmap  # noqa: E402


def test_every_cell_is_printed_with_its_note_and_the_ticks_name_rows_and_columns():
    fig = plot_heatmap([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], [0.05, 0.5], [32, 64, 128],
                       notes=[["a", "b", "c"], ["d", "e", "f"]])
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["0.100\na", "0.200\nb", "0.300\nc", "0.400\nd", "0.500\ne", "0.600\nf"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["32", "64", "128"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0.05", "0.5"]
    plt.close(fig)


def test_values_that_do_not_fit_the_labels_are_refused():
    with pytest.raises(ValueError, match=r"\(2, 2\) do not fit 2 rows × 3 columns"):
        plot_heatmap([[1, 2], [3, 4]], ["a", "b"], [1, 2, 3])
