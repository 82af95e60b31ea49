//! Physical backups of an SnsCluster's MySQL to S3, taken by `sns-operator backup`, which
//! the CronJob `<cluster>-mysql-backup` runs (`spec.backup`):
//!
//! ```text
//! every server, highest ordinal first ─► SELECT @@read_only as monitor ─► a replica (else
//!                                        the primary) is the donor
//! donor's clone donor (port 3307, donor.sh) ─► CLONE ─► xbstream ─► S3 multipart upload
//!      <prefix><cluster>/mysql/<id>/data.xbstream   (ends with donor.sh's completion mark)
//!      <prefix><cluster>/mysql/<id>/backup.json     (written last: the backup is complete)
//! retention: complete backups beyond spec.backup.keep, and what failed runs left before
//!            the newest complete one, are deleted
//! ```
//!
//! The reconciler reads the bucket at each check (`status`): `status.backup` names the newest
//! complete backup, and the condition `BackupReady` says whether the last scheduled run left
//! one (`operator_backup_failing` and the alert `MySQLBackupFailing` follow it).
//!
//! Between backups the primary's binary logs are archived (`archive`), and a new cluster
//! with `spec.restore` starts from a backup and the logs after it, to a point in time
//! (`restore`, start.sh).

pub mod archive;
pub mod binlog;
mod bucket;
mod job;
pub mod restore;
mod status;

pub use archive::Archivers;
pub use bucket::{BackupRecord, Bucket, BucketSettings, backups_prefix};
pub use job::{BackupArgs, run};
pub use restore::{RestoreArgs, fetch};
pub use status::{ArchiveObservation, BackupObservation, observe};
