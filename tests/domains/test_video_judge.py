"""The Moving-MNIST judge: identity across frames by hand, Frechet distances of a set against itself and
under corruption, the shipped classifiers' accuracy on a handful of real test clips, motion seen by
video_fd and not by frame_fd, the judge file round trip and the errors for missing weights and bad shapes."""
import pytest
import torch
from sciffusion_domains.video import judge as judging


def sets(*frames_per_clip):
    """Bool [N, T, 10] from per-clip lists of digit sets."""
    out = torch.zeros(len(frames_per_clip), len(frames_per_clip[0]), 10, dtype=torch.bool)
    for i, clip in enumerate(frames_per_clip):
        for t, digits in enumerate(clip):
            out[i, t, list(digits)] = True
    return out


def test_identity_kept_counts_frames_showing_the_majority_set():
    assert judging.identity_kept(sets([{3, 7}] * 4)) == 1.0
    assert judging.identity_kept(sets([{3, 7}, {3, 7}, {3}, {3, 7}])) == 0.75
    assert judging.identity_kept(sets([{3}, {1}, {1, 2}, {2}])) == 0.25  # a tie: the first set seen
    assert judging.identity_kept(sets([set()] * 4)) == 0.0  # blank frames keep no identity
    assert judging.identity_kept(sets([set(), set(), set(), {5}])) == 0.25
    assert judging.identity_kept(sets([{3, 7}] * 4, [{1}, {1}, {2}, {2}])) == 0.75  # mean over clips


def test_digits_recognised_needs_exactly_the_given_pair():
    predicted = sets([{3, 7}, {3}, {3, 7}, {3, 7, 8}], [{5}, {5}, {5}, {5}])
    truth = judging.as_digit_sets([37, (5, 5)], 2)  # a label, and a pair of equal digits
    assert judging.digits_recognised(predicted, truth) == pytest.approx(6 / 8)
    assert judging.as_digit_sets([7, {4}], 2) == [frozenset({0, 7}), frozenset({4})]
    with pytest.raises(ValueError, match="each of the 2 clips"):
        judging.as_digit_sets([37], 2)
    with pytest.raises(ValueError, match="0..99"):
        judging.as_digit_sets([123], 1)


def test_time_corruptions_keep_the_frames():
    clips = torch.arange(2 * 6, dtype=torch.float32).reshape(2, 1, 6, 1, 1).expand(2, 1, 6, 2, 2).contiguous()
    g = torch.Generator().manual_seed(0)
    shuffled, frozen = judging.corrupt_time(clips, torch.tensor([1, 2]), g)
    assert sorted(shuffled[0, :, 0, 0].tolist()) == clips[0, 0, :, 0, 0].tolist()
    assert not torch.equal(shuffled, clips[0])
    assert (frozen == frozen[:, :1]).all() and frozen[0, 0, 0, 0] in clips[1, 0, :, 0, 0]


@pytest.fixture(scope="module")
def judge():
    return judging.load_judge(32)


@pytest.fixture(scope="module")
def real():
    clips, digits = judging.real_clips("test", 24, size=32, frames=16)
    return clips[:8], digits[:8], clips[8:]


def test_the_shipped_judge_reads_real_test_clips(judge, real):
    clips, digits, reference = real
    assert judge.size == 32 and judge.meta["test_accuracy"]["frame_set_accuracy"] > 0.75
    accuracy = judging.judge_accuracy(judge, clips, digits)
    assert accuracy["frame_set_accuracy"] > 0.7 and accuracy["frame_digit_accuracy"] > 0.95
    assert accuracy["temporal_accuracy"] > 0.9 and accuracy["clip_set_accuracy"] > 0.6
    scores = judging.judge_metrics(clips, reference, given_digits=digits, judge=judge)
    assert scores["identity_kept"] > 0.7 and scores["digits_recognised"] > 0.7
    assert 1.5 < scores["digits_per_frame"] < 2.2 and scores["judged_real"] > 0.7
    # a pair the judge reads right in every frame keeps its identity exactly
    right = (judging.frame_digit_sets(judge, clips) == judging.digit_targets(digits).bool()[:, None]).all(-1).all(-1)
    assert right.any()
    kept = judging.judge_metrics(clips[right].repeat(2, 1, 1, 1, 1), reference, judge=judge,
                                 given_digits=[d for d, r in zip(digits, right) if r] * 2)
    assert kept["identity_kept"] == 1.0 and kept["digits_recognised"] == 1.0


def test_frechet_distances_are_zero_for_a_set_against_itself_and_grow_with_noise(judge, real):
    clips, _, _ = real
    same = judging.judge_metrics(clips, clips, judge=judge)
    assert abs(same["frame_fd"]) < 1e-3 and abs(same["video_fd"]) < 1e-3  # round-off of rank-deficient covariances
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(clips.shape, generator=g)
    fds = [judging.judge_metrics((clips + s * noise).clamp(-1, 1), clips, judge=judge) for s in (0.1, 0.5)]
    assert 1e-3 < fds[0]["frame_fd"] < fds[1]["frame_fd"] and 1e-3 < fds[0]["video_fd"] < fds[1]["video_fd"]


def test_video_fd_sees_shuffled_and_frozen_frames_that_frame_fd_cannot(judge, real):
    clips, _, reference = real
    g = torch.Generator().manual_seed(1)
    moving = judging.judge_metrics(clips, reference, judge=judge)
    shuffled = judging.judge_metrics(judging.corrupt_time(clips, torch.ones(8, dtype=torch.long), g), reference,
                                     judge=judge)
    frozen = judging.judge_metrics(judging.corrupt_time(clips, torch.full((8,), 2), g), reference, judge=judge)
    assert shuffled["frame_fd"] == pytest.approx(moving["frame_fd"], rel=1e-6)  # the same frames, pooled
    assert shuffled["video_fd"] > 2 * moving["video_fd"] and frozen["video_fd"] > 2 * moving["video_fd"]
    assert shuffled["judged_real"] < moving["judged_real"] and frozen["judged_real"] < moving["judged_real"]


def test_a_judge_file_round_trips(tmp_path):
    torch.manual_seed(0)
    judge = judging.Judge(judging.FrameClassifier(width=8, feature_dim=16),
                          judging.ClipClassifier(width=8, feature_dim=16), {"size": 16})
    loaded = judging.load_judge(judge.save(tmp_path / "judge.pt"))
    x = torch.rand(2, 1, 4, 16, 16) * 2 - 1
    assert torch.equal(loaded.clip.features(x), judge.clip.eval().features(x)) and loaded.size == 16
    assert torch.equal(loaded.frame(x[:, :, 0]), judge.frame.eval()(x[:, :, 0]))


def test_errors_name_the_problem_and_the_fix(judge, real, tmp_path):
    clips, _, reference = real
    with pytest.raises(FileNotFoundError, match="train_judge.py --size 48"):
        judging.load_judge(48)
    with pytest.raises(FileNotFoundError, match="no Moving-MNIST judge"):
        judging.load_judge(tmp_path / "absent.pt")
    with pytest.raises(ValueError, match=r"\[N, 1, T, H, W\]"):
        judging.judge_metrics(clips[:, 0], reference, judge=judge)
    with pytest.raises(ValueError, match=r"load_judge\(64\)"):
        judging.judge_metrics(torch.zeros(2, 1, 16, 64, 64), reference, judge=judge)
    with pytest.raises(ValueError, match="same length"):
        judging.judge_metrics(clips[:, :, :8], reference, judge=judge)
    with pytest.raises(ValueError, match="given_frames"):
        judging.judge_metrics(clips, reference, judge=judge, given_frames=16)
