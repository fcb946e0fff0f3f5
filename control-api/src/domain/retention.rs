//! Image retention: which fleet AMIs to keep (newest N, anything backing a host) and which to delete.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// A fleet image with what deleting it involves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRecord {
    pub id: String,
    pub name: Option<String>,
    /// ISO-8601; text order is time order.
    pub created: Option<String>,
    pub snapshots: Vec<String>,
}

/// Why an image stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum KeepReason {
    /// Among the newest `keep` images; `rank` 1 is the newest.
    Newest { rank: usize },
    /// Backs instances that are pending, running, stopping or stopped.
    InUse { instances: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetentionPlan {
    pub keep: Vec<(ImageRecord, KeepReason)>,
    pub delete: Vec<ImageRecord>,
    /// Snapshots of deleted images that no kept image also uses.
    pub delete_snapshots: Vec<String>,
}

/// Plans retention. `in_use` maps image id → instances it backs; any such image stays,
/// whatever its age. Images without a creation date sort oldest, so they go first.
pub fn plan_retention(
    mut images: Vec<ImageRecord>,
    in_use: &BTreeMap<String, Vec<String>>,
    keep: usize,
) -> RetentionPlan {
    images.sort_by(|a, b| (&b.created, &b.id).cmp(&(&a.created, &a.id)));
    let mut plan = RetentionPlan {
        keep: Vec::new(),
        delete: Vec::new(),
        delete_snapshots: Vec::new(),
    };
    for (i, image) in images.into_iter().enumerate() {
        if let Some(instances) = in_use.get(&image.id) {
            plan.keep.push((
                image,
                KeepReason::InUse {
                    instances: instances.clone(),
                },
            ));
        } else if i < keep {
            plan.keep.push((image, KeepReason::Newest { rank: i + 1 }));
        } else {
            plan.delete.push(image);
        }
    }
    let kept: BTreeSet<&String> = plan.keep.iter().flat_map(|(i, _)| &i.snapshots).collect();
    let doomed: BTreeSet<&String> = plan.delete.iter().flat_map(|i| &i.snapshots).collect();
    plan.delete_snapshots = doomed.difference(&kept).map(|s| (*s).clone()).collect();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(id: &str, created: &str, snaps: &[&str]) -> ImageRecord {
        ImageRecord {
            id: id.into(),
            name: None,
            created: Some(created.into()).filter(|c: &String| !c.is_empty()),
            snapshots: snaps.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn keeps_the_newest_and_anything_in_use() {
        let images = vec![
            img("ami-1", "2026-01-01", &["snap-1"]),
            img("ami-2", "2026-02-01", &["snap-2"]),
            img("ami-3", "2026-03-01", &["snap-3", "snap-shared"]),
            img("ami-4", "2026-04-01", &["snap-4"]),
            img("ami-5", "2026-05-01", &["snap-5", "snap-shared"]),
            img("ami-0", "", &["snap-0"]),
        ];
        let in_use = BTreeMap::from([(
            "ami-1".to_string(),
            vec!["i-a".to_string(), "i-b".to_string()],
        )]);
        let plan = plan_retention(images, &in_use, 2);
        let kept: Vec<(&str, &KeepReason)> =
            plan.keep.iter().map(|(i, r)| (i.id.as_str(), r)).collect();
        assert_eq!(
            kept,
            [
                ("ami-5", &KeepReason::Newest { rank: 1 }),
                ("ami-4", &KeepReason::Newest { rank: 2 }),
                (
                    "ami-1",
                    &KeepReason::InUse {
                        instances: vec!["i-a".into(), "i-b".into()]
                    }
                ),
            ]
        );
        let deleted: Vec<&str> = plan.delete.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(deleted, ["ami-3", "ami-2", "ami-0"]);
        // snap-shared also backs the kept ami-5.
        assert_eq!(plan.delete_snapshots, ["snap-0", "snap-2", "snap-3"]);
    }

    #[test]
    fn an_image_both_newest_and_in_use_is_kept_once() {
        // In use and newest at once: kept once, counted as in use.
        let images = vec![
            img("ami-1", "2026-01-01", &[]),
            img("ami-2", "2026-02-01", &[]),
        ];
        let in_use = BTreeMap::from([("ami-2".to_string(), vec!["i-a".to_string()])]);
        let plan = plan_retention(images, &in_use, 1);
        assert_eq!(plan.keep.len(), 1);
        assert_eq!(plan.delete.len(), 1);
        assert_eq!(plan.delete[0].id, "ami-1");
    }

    #[test]
    fn keep_zero_still_keeps_what_is_in_use() {
        let images = vec![img("ami-1", "2026-01-01", &["s1"])];
        let in_use = BTreeMap::from([("ami-1".to_string(), vec!["i-a".to_string()])]);
        let plan = plan_retention(images, &in_use, 0);
        assert!(plan.delete.is_empty() && plan.delete_snapshots.is_empty());
    }
}
