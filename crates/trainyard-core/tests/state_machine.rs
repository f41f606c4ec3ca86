//! Every (status, event) pair: the transitions the spec allows succeed, all others are rejected.

use trainyard_core::{apply, RunEvent as E, RunStatus as S};

/// The spec's transition list, written out independently of `apply`'s match.
fn allowed() -> Vec<(S, E, S)> {
    let mut t = vec![
        (S::Pending, E::Schedule, S::Scheduled),
        (S::Pending, E::Submit, S::Submitting),
        (S::Scheduled, E::Submit, S::Submitting),
        (S::Submitting, E::Submitted, S::Running),
        (S::Running, E::Finish { blessed: true }, S::Completed),
        (S::Running, E::Finish { blessed: false }, S::NotBlessed),
        (S::Deploying, E::Deployed, S::Deployed),
        (S::Deploying, E::DeployError, S::DeployFailed),
        (S::Deployed, E::Undeploy { is_blessed: true }, S::Completed),
        (
            S::Deployed,
            E::Undeploy { is_blessed: false },
            S::NotBlessed,
        ),
    ];
    for from in [S::Pending, S::Scheduled, S::Submitting, S::Running] {
        t.push((from, E::Fail, S::Failed));
        t.push((from, E::Cancel, S::Cancelled));
    }
    for from in [
        S::Completed,
        S::NotBlessed,
        S::DeployFailed,
        S::Deployed,
        S::Deploying,
    ] {
        t.push((from, E::Deploy, S::Deploying));
    }
    t
}

#[test]
fn every_status_event_pair_matches_the_spec() {
    let allowed = allowed();
    let mut accepted = 0;
    for from in S::ALL {
        for event in E::ALL {
            let expected = allowed
                .iter()
                .find(|(f, e, _)| *f == from && *e == event)
                .map(|(_, _, to)| *to);
            match (apply(from, event), expected) {
                (Ok(to), Some(want)) => {
                    assert_eq!(to, want, "{from} --{event:?}-->");
                    accepted += 1;
                }
                (Err(err), None) => {
                    assert_eq!(err.from, from);
                    assert_eq!(err.event, event);
                    assert!(err.to_string().contains(from.as_str()), "{err}");
                }
                (got, want) => panic!("{from} --{event:?}--> got {got:?}, want {want:?}"),
            }
        }
    }
    assert_eq!(accepted, allowed.len());
    assert_eq!(S::ALL.len() * E::ALL.len(), 132);
}

#[test]
fn auto_deploy_can_deploy_from_deploying() {
    // Bug 9: the auto-deploy path marks the run deploying before it deploys.
    assert_eq!(apply(S::Deploying, E::Deploy), Ok(S::Deploying));
}

#[test]
fn undeploy_allows_redeploy() {
    // Bug 10: after undeploy the run must be deployable again.
    for blessed in [true, false] {
        let back = apply(
            S::Deployed,
            E::Undeploy {
                is_blessed: blessed,
            },
        )
        .unwrap();
        assert_eq!(back, if blessed { S::Completed } else { S::NotBlessed });
        assert_eq!(apply(back, E::Deploy), Ok(S::Deploying));
    }
}

#[test]
fn training_finished_covers_deploy_statuses() {
    let finished: Vec<S> = S::ALL
        .into_iter()
        .filter(|s| s.training_finished())
        .collect();
    assert_eq!(
        finished,
        vec![
            S::Completed,
            S::Failed,
            S::Cancelled,
            S::NotBlessed,
            S::Deploying,
            S::Deployed,
            S::DeployFailed
        ]
    );
}

#[test]
fn status_names_round_trip() {
    for s in S::ALL {
        assert_eq!(S::parse(s.as_str()), Some(s));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{}\"", s.as_str()));
    }
    assert_eq!(S::parse("Completed"), None);
}
