//! MySQL seen from inside the cluster's pods: SQL as root through `kubectl exec`, who
//! replicates from whom, and which acknowledged writes the primary holds.

use std::collections::{BTreeMap, BTreeSet};

use crate::cluster::TestCluster;

impl TestCluster {
    /// Whether `replica` answers read_only=1 and replicates from `primary` with both threads.
    pub fn replicates_from(&self, replica: &str, primary: &str) -> bool {
        let (ok, read_only) = self.sql_try(replica, "SELECT @@global.read_only");
        // Vertical output names each field.
        let (ok_too, out) = self.mariadb(replica, "SHOW SLAVE STATUS\\G", &[]);
        ok && ok_too
            && read_only.trim() == "1"
            && out.contains(&format!("Master_Host: {primary}."))
            && out.contains("Slave_IO_Running: Yes")
            && out.contains("Slave_SQL_Running: Yes")
    }

    /// Restarts of the containers of a component's pods, in all.
    pub async fn restarts(&self, component: &str) -> i32 {
        self.pods(component)
            .await
            .iter()
            .filter_map(|p| p.status.as_ref())
            .flat_map(|s| s.container_statuses.clone().unwrap_or_default())
            .map(|c| c.restart_count)
            .sum()
    }

    /// Runs SQL as root in `pod`'s mariadb container; tab-separated rows.
    pub fn sql(&self, pod: &str, statement: &str) -> String {
        let (ok, out) = self.sql_try(pod, statement);
        assert!(ok, "{statement} on {pod}: {out}");
        out
    }

    pub fn sql_try(&self, pod: &str, statement: &str) -> (bool, String) {
        self.mariadb(pod, statement, &["--batch", "--skip-column-names"])
    }

    /// Runs the mariadb client as root in `pod`'s mariadb container with `options`.
    pub fn mariadb(&self, pod: &str, statement: &str, options: &[&str]) -> (bool, String) {
        let script = format!(
            "MYSQL_PWD=\"$MARIADB_ROOT_PASSWORD\" mariadb --user=root {} --execute=\"{statement}\"",
            options.join(" ")
        );
        self.node.kubectl(&[
            "exec",
            "-n",
            &self.namespace,
            pod,
            "-c",
            "mariadb",
            "--",
            "bash",
            "-c",
            &script,
        ])
    }

    /// Acknowledged posts and likes missing from the primary.
    pub async fn lost_writes(
        &self,
        posts: &BTreeSet<u64>,
        likes: &BTreeMap<u64, BTreeSet<u64>>,
    ) -> usize {
        let primary = self.status().await.mysql.primary.expect("a primary");
        let stored_posts: BTreeSet<u64> = self
            .sql(&primary, "SELECT id FROM sns.posts")
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        let stored_likes: BTreeSet<(u64, u64)> = self
            .sql(&primary, "SELECT post_id, user_id FROM sns.post_likes")
            .lines()
            .filter_map(|l| {
                let mut fields = l.split('\t');
                Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
            })
            .collect();
        let lost_posts = posts.difference(&stored_posts).count();
        let lost_likes = likes
            .iter()
            .flat_map(|(post, likers)| likers.iter().map(move |liker| (*post, *liker)))
            .filter(|like| !stored_likes.contains(like))
            .count();
        if lost_posts + lost_likes > 0 {
            eprintln!("e2e: lost {lost_posts} posts and {lost_likes} likes");
        }
        lost_posts + lost_likes
    }
}
