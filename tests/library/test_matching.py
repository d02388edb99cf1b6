"""The paper's metric formulas (REFERENCE.md section 5) pinned on hand-computed matrices."""

import math

import numpy as np
import pytest

from umo_pipeline import labels, matching
from umo_pipeline.faces.base import Thresholds

ARC = Thresholds(match=0.5, weak=0.3, confusion_ratio=0.9)


def test_similarity_is_cosine_of_normalised_embeddings():
    refs = [np.array([3.0, 4.0]), np.array([0.0, 2.0])]
    faces = [np.array([1.0, 0.0]), np.array([0.0, -5.0]), np.array([1.0, 1.0])]
    S = matching.similarity_matrix(refs, faces)
    r2 = 1 / math.sqrt(2)
    expected = [[0.6, -0.8, 0.6 * r2 + 0.8 * r2], [0.0, -1.0, r2]]
    np.testing.assert_allclose(S, expected, atol=1e-12)


def test_similarity_with_no_faces_or_no_references_has_the_right_shape():
    assert matching.similarity_matrix([np.ones(4)] * 3, []).shape == (3, 0)
    assert matching.similarity_matrix([], [np.ones(4)] * 2).shape == (0, 2)


def test_similarity_rejects_mixed_backends():
    with pytest.raises(ValueError, match="different face backends"):
        matching.similarity_matrix([np.ones(128)], [np.ones(512)])


def test_assignment_maximises_the_total_not_each_row_greedily():
    # Greedy (row 0 takes its best, 0.9) would total 0.9 + 0.1; the optimum is 0.8 + 0.85.
    S = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert matching.assign(S) == [1, 0]


def test_assignment_rectangular_in_both_directions():
    more_faces = np.array([[0.1, 0.2, 0.9], [0.7, 0.3, 0.2]])
    assert matching.assign(more_faces) == [2, 0]
    more_refs = np.array([[0.2], [0.8], [0.5]])
    assert matching.assign(more_refs) == [None, 0, None]
    assert matching.assign(np.zeros((2, 0))) == [None, None]


def test_id_sim_is_row_max_and_zero_without_faces():
    S = np.array([[0.2, 0.7, 0.4], [-0.3, -0.1, -0.2]])
    np.testing.assert_allclose(matching.id_sim(S), [0.7, 0.0])  # negative floored at 0
    np.testing.assert_allclose(matching.id_sim(np.zeros((2, 0))), [0.0, 0.0])


def test_id_conf_formula_from_the_two_best_faces():
    S = np.array([
        [0.8, 0.2, 0.4],   # 1 - 0.4/0.8 = 0.5
        [0.3, 0.6, 0.6],   # tie: 1 - 1 = 0
        [0.9, 0.0, -0.5],  # s2 = 0 -> 1
        [0.5, 0.7, 0.1],   # 1 - 0.5/0.7
    ])
    conf = matching.id_conf(S)
    assert conf[0] == pytest.approx(0.5)
    assert conf[1] == pytest.approx(0.0)
    assert conf[2] == pytest.approx(1.0)
    assert conf[3] == pytest.approx(1 - 0.5 / 0.7)


def test_id_conf_is_undefined_not_zero_with_fewer_than_two_faces_or_no_positive_similarity():
    assert matching.id_conf(np.array([[0.9], [0.1]])) == [None, None]
    assert matching.id_conf(np.zeros((1, 0))) == [None]
    assert matching.id_conf(np.array([[-0.2, -0.1]])) == [None]
    assert matching.id_conf(np.array([[0.0, 0.0]])) == [None]


def test_id_conf_clips_negative_second_ratio():
    # s1 > 0, s2 < 0: 1 - s2/s1 > 1, clipped to 1
    assert matching.id_conf(np.array([[0.4, -0.4]])) == [pytest.approx(1.0)]


def test_matching_reward_is_matched_minus_unmatched_over_all_pairs():
    S = np.array([[0.9, 0.2, 0.1], [0.3, 0.8, 0.4]])
    # assigned (0,0) and (1,1): (0.9 + 0.8 - 0.2 - 0.1 - 0.3 - 0.4) / 6
    assert matching.matching_reward(S) == pytest.approx(0.7 / 6)
    assert matching.matching_reward(np.zeros((2, 0))) is None


def test_matching_reward_with_more_references_than_faces():
    S = np.array([[0.6], [0.9]])
    assert matching.matching_reward(S) == pytest.approx((0.9 - 0.6) / 2)


def test_statuses_matched_weak_not_found():
    S = np.array([[0.8, 0.0, 0.1], [0.1, 0.4, 0.0], [0.0, 0.1, 0.2]])
    labels, confused = matching.statuses(S, matching.assign(S), ARC)
    assert labels == [matching.MATCHED, matching.WEAK, matching.NOT_FOUND]
    assert confused == [[], [], []]


def test_two_references_with_the_same_best_face_are_both_confused():
    # Both references look most like face 0; the assignment hands face 1 to reference 1 anyway.
    S = np.array([[0.7, 0.1], [0.6, 0.35]])
    match = matching.match_identities(S, ARC)
    assert match.assignment == [0, 1]
    assert match.statuses == [matching.CONFUSED, matching.CONFUSED]
    assert match.confused_with == [[1], [0]]


def test_second_face_nearly_as_similar_flags_confusion_with_its_owner():
    S = np.array([[0.70, 0.66], [0.05, 0.60]])
    match = matching.match_identities(S, ARC)
    assert match.assignment == [0, 1]
    assert match.statuses == [matching.CONFUSED, matching.MATCHED]
    assert match.confused_with == [[1], []]


def test_a_second_face_below_weak_is_not_confusion():
    S = np.array([[0.30, 0.28]])  # ratio 0.93 but the rival face only barely resembles the reference
    strict = Thresholds(match=0.5, weak=0.29, confusion_ratio=0.9)
    assert matching.match_identities(S, strict).statuses == [matching.WEAK]


def test_no_output_face_means_every_reference_not_found():
    match = matching.match_identities(np.zeros((3, 0)), ARC)
    assert match.statuses == [matching.NOT_FOUND] * 3
    assert match.assignment == [None] * 3
    assert match.id_sim == [0.0, 0.0, 0.0]
    assert match.id_conf == [None] * 3
    assert match.matching_score is None
    assert match.mean_id_sim == 0.0 and match.mean_id_conf is None


def test_reference_without_face_is_left_out_of_assignment_and_metrics():
    S = np.array([[0.1, 0.9], [np.nan, np.nan], [0.8, 0.2]])
    match = matching.match_identities(S, ARC)
    assert match.assignment == [1, None, 0]
    assert match.statuses == [matching.MATCHED, matching.NO_REFERENCE_FACE, matching.MATCHED]
    assert match.id_sim == [pytest.approx(0.9), None, pytest.approx(0.8)]
    assert match.id_conf[1] is None
    assert match.matching_score == pytest.approx((0.9 + 0.8 - 0.1 - 0.2) / 4)
    assert match.mean_id_sim == pytest.approx(0.85)
    assert match.mean_id_conf == pytest.approx(np.mean([1 - 0.1 / 0.9, 1 - 0.2 / 0.8]))


def test_no_references():
    match = matching.match_identities(np.zeros((0, 2)), ARC)
    assert match.assignment == [] and match.statuses == []
    assert match.mean_id_sim is None and match.matching_score is None


def test_one_identity_on_two_faces_is_confused_with_nobody():
    # Reference 0 resembles both faces; reference 1 is assigned face 1 but does not resemble it.
    S = np.array([[0.70, 0.68], [0.05, 0.10]])
    match = matching.match_identities(S, ARC)
    assert match.statuses == [matching.CONFUSED, matching.NOT_FOUND]
    assert match.confused_with == [[], []]


def test_second_face_convincingly_the_same_person_is_confusion_even_below_the_ratio():
    S = np.array([[0.90, 0.60], [0.10, 0.20]])  # 0.60 / 0.90 = 0.67 < 0.9, but 0.60 >= match
    match = matching.match_identities(S, ARC)
    assert match.statuses == [matching.CONFUSED, matching.NOT_FOUND]


def test_scores_read_x100_with_one_decimal_and_undefined_reads_n_a():
    assert labels.format_score(0.78064) == "78.1"
    assert labels.format_score(0.0) == "0.0"
    assert labels.format_score(None) == "n/a"
    assert labels.format_score(float("nan")) == "n/a"
    assert labels.format_delta(0.71, 0.32) == "+39.0"
    assert labels.format_delta(0.30, 0.35) == "-5.0"
    # no face on one side: the difference is undefined, not +0.0
    assert labels.format_delta(None, 0.4) == "n/a"
    assert labels.format_delta(0.4, None) == "n/a"
    assert labels.format_delta(None, None) == "n/a"
    assert labels.format_signed(0.0123) == "+1.2" and labels.format_signed(None) == "n/a"


def test_labels_name_candidates_methods_and_shorten_prompts():
    from types import SimpleNamespace

    def candidate(score, labels_=("Reference 1",)):
        report = SimpleNamespace(matching_score=score, mean_id_sim=0.456, labels=list(labels_))
        return SimpleNamespace(rank=1, seed=42, report=report)

    assert labels.candidate_caption(candidate(0.123)) == "#1 seed 42: score 12.3, ID-Sim 45.6"
    assert labels.candidate_caption(candidate(None)) == "#1 seed 42: no score (no face found)"
    assert labels.candidate_caption(candidate(None, ())) == "#1 seed 42: no score (no references)"
    assert labels.candidate_caption(candidate(0.123), compact=True) == "#1 · score 12.3 · seed 42"
    assert labels.candidate_caption(candidate(None), compact=True) == "#1 · no score · seed 42"
    assert labels.method_name("umo-uno", "umo") == "UMO-UNO" and labels.method_name("tiny", "base") == "tiny base"
    assert labels.reference_label(0) == "Reference 1" and labels.face_label(None) == "no face"
    assert labels.excerpt("two  friends\nat a cafe", 40) == "two friends at a cafe"
    assert labels.excerpt("x" * 50, 40) == "x" * 37 + "..."


def test_best_and_runner_up_explain_id_conf():
    S = np.array([[0.2, 0.8, 0.4], [0.6, 0.1, 0.3]])
    match = matching.match_identities(S, ARC)
    assert match.best_face == [1, 0] and match.runner_up_face == [2, 2]
    np.testing.assert_allclose(match.best_similarity, [0.8, 0.6])
    np.testing.assert_allclose(match.runner_up_similarity, [0.4, 0.3])
    for s1, s2, conf in zip(match.best_similarity, match.runner_up_similarity, match.id_conf):
        assert conf == pytest.approx(1 - s2 / s1)


def test_hungarian_assigned_similarity_differs_from_best_match_when_two_want_one_face():
    # Both references look most like face 0. ID-Sim (best match) credits both with it; the
    # assignment gives face 0 to reference 0 (total 0.9 + 0.5 > 0.8 + 0.3) and face 1 to reference 1.
    S = np.array([[0.9, 0.3], [0.8, 0.5]])
    match = matching.match_identities(S, ARC)
    assert match.assignment == [0, 1]
    np.testing.assert_allclose(match.id_sim, [0.9, 0.8])
    np.testing.assert_allclose(match.assigned_similarity, [0.9, 0.5])
    assert match.mean_assigned_similarity == pytest.approx(0.7)
    assert match.mean_id_sim == pytest.approx(0.85)


def test_a_reference_left_without_a_face_counts_zero_in_the_assigned_mean():
    S = np.array([[0.9], [0.6], [np.nan]])  # two references for one face; the third had no face
    match = matching.match_identities(S, ARC)
    assert match.assignment == [0, None, None]
    assert match.assigned_similarity == [pytest.approx(0.9), None, None]
    assert match.mean_assigned_similarity == pytest.approx(0.45)  # (0.9 + 0) / 2: the faceless one is out
    assert match.statuses[2] == "no face in the reference"


def test_faceless_reference_is_told_apart_even_when_the_output_has_no_face():
    match = matching.match_identities(np.zeros((2, 0)), ARC, reference_has_face=[True, False])
    assert match.statuses == [matching.NOT_FOUND, matching.NO_REFERENCE_FACE]
    assert match.mean_assigned_similarity == 0.0
    assert match.best_face == [None, None] and match.runner_up_similarity == [None, None]


def test_every_reported_metric_has_a_definition():
    for key in ("id_sim", "id_conf", "best_similarity", "runner_up_similarity", "assigned_similarity",
                "mean_assigned_similarity", "matching_score", "similarity", "unit"):
        assert matching.DEFINITIONS[key]
    assert "Hungarian" in matching.DEFINITIONS["assigned_similarity"]
    assert "best match" in matching.DEFINITIONS["id_sim"]
