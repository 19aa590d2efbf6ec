//! Threads as kernel threads: worker threads created on demand run the items (some of which
//! sleep, telling the pool, and some re-queue themselves), while two "CPU" threads queue,
//! cancel and flush them. Checked: an item never runs twice at once; `flush_work` returns
//! only after the instance it waited for finished (or was canceled); after `cancel_work_sync`
//! the item neither runs nor is pending; in the end every successful queueing ran once or was
//! canceled.
#![cfg(not(loom))]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use workqueue::{
    Action, Actions, Next, PoolId, SYSTEM_UNBOUND_WQ, SYSTEM_WQ, WorkItem, WorkStruct, WorkerId,
    Workqueues, WqFlags, WqId,
};

const ITEMS: usize = 16;
const ROUNDS: usize = 20_000;

struct Item {
    work: WorkStruct,
    /// Set while its function runs.
    active: AtomicBool,
    runs: AtomicU64,
    /// Successful re-queueings by its own function.
    requeues: AtomicU64,
    /// Sequence number of the last instance that finished.
    last_done: AtomicU32,
}

type W = &'static Item;

impl WorkItem for &'static Item {
    fn work(&self) -> &WorkStruct {
        &self.work
    }
}

/// A worker thread's wake-up flag.
#[derive(Default)]
struct Parker {
    woken: Mutex<bool>,
    cv: Condvar,
}

struct Kernel {
    wqs: Workqueues<W>,
    parkers: Mutex<HashMap<(PoolId, WorkerId), Arc<Parker>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stop: AtomicBool,
}

fn rand(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

impl Kernel {
    fn perform(self: &Arc<Self>, actions: Actions) {
        for a in actions {
            match a {
                Action::CreateWorker { pool } => {
                    let id = self.wqs.worker_created(pool);
                    let parker = Arc::new(Parker::default());
                    self.parkers
                        .lock()
                        .unwrap()
                        .insert((pool, id), parker.clone());
                    let k = self.clone();
                    let t = thread::spawn(move || k.worker(pool, id, &parker));
                    self.threads.lock().unwrap().push(t);
                }
                Action::WakeWorker { pool, worker } | Action::Retire { pool, worker } => {
                    let p = self.parkers.lock().unwrap()[&(pool, worker)].clone();
                    *p.woken.lock().unwrap() = true;
                    p.cv.notify_one();
                }
                _ => {}
            }
        }
    }

    fn worker(self: &Arc<Self>, pool: PoolId, id: WorkerId, parker: &Parker) {
        let mut seed = 0x9e37_79b9_7f4a_7c15 ^ (u64::from(pool.0) << 16 | u64::from(id.0));
        loop {
            let (next, actions) = self.wqs.worker_next(pool, id, 0);
            self.perform(actions);
            match next {
                Next::Run(job) => {
                    let item = job.work;
                    assert!(!item.active.swap(true, SeqCst), "item runs twice at once");
                    if rand(&mut seed).is_multiple_of(4) {
                        // It sleeps: the pool may start another worker meanwhile.
                        let a = self.wqs.worker_sleeping(pool, id);
                        self.perform(a);
                        thread::sleep(Duration::from_micros(50));
                        self.wqs.worker_waking(pool, id);
                    }
                    if rand(&mut seed).is_multiple_of(8) {
                        let (q, a) = self.wqs.queue_work_from(&job, job.wq, item);
                        self.perform(a);
                        if q {
                            item.requeues.fetch_add(1, SeqCst);
                        }
                    }
                    item.runs.fetch_add(1, SeqCst);
                    item.last_done.store(job.seq, SeqCst);
                    item.active.store(false, SeqCst);
                    let a = self.wqs.worker_done(job);
                    self.perform(a);
                }
                Next::Idle => {
                    let mut woken = parker.woken.lock().unwrap();
                    while !*woken && !self.stop.load(SeqCst) {
                        woken = parker
                            .cv
                            .wait_timeout(woken, Duration::from_millis(10))
                            .unwrap()
                            .0;
                    }
                    *woken = false;
                    if self.stop.load(SeqCst) {
                        return;
                    }
                }
                Next::Exit => return,
            }
        }
    }
}

/// Waiting longer than this for a flush or cancel means an item was lost (or a worker died).
const STALL: Duration = Duration::from_secs(10);

/// The `wait` of a flush or cancel: a short sleep, and a panic on a stall (so a broken build
/// fails instead of hanging).
fn waiter() -> impl FnMut() {
    let start = Instant::now();
    move || {
        assert!(start.elapsed() < STALL, "flush or cancel stalled");
        thread::sleep(Duration::from_micros(20));
    }
}

/// One "CPU": queues, cancels and flushes the items it owns (`i % 2 == cpu`).
fn producer(k: &Arc<Kernel>, items: &[W], wqs: &[WqId], cpu: usize) -> (Vec<u64>, Vec<u64>) {
    let mut seed = 0x2545_f491_4f6c_dd1d + cpu as u64;
    let mut queued = vec![0u64; ITEMS];
    let mut canceled = vec![0u64; ITEMS];
    let mut canceled_seq = [0u32; ITEMS];
    for _ in 0..ROUNDS {
        let i = (rand(&mut seed) as usize % (ITEMS / 2)) * 2 + cpu;
        let item = items[i];
        match rand(&mut seed) % 10 {
            0 => {
                let seq = item.work.seq();
                let (was, a) = k.wqs.cancel_work_sync(&item, &mut waiter());
                k.perform(a);
                assert!(!item.active.load(SeqCst), "running after cancel_work_sync");
                assert!(!item.work.is_pending(), "pending after cancel_work_sync");
                if was {
                    canceled[i] += 1;
                    canceled_seq[i] = seq.max(item.work.seq());
                }
            }
            1 | 2 => {
                let seq = item.work.seq();
                k.wqs.flush_work(&item, &mut waiter());
                let done = item.last_done.load(SeqCst).max(canceled_seq[i]);
                assert!(
                    done >= seq,
                    "flush_work returned before instance {seq} ({done})"
                );
            }
            _ => {
                let wq = wqs[rand(&mut seed) as usize % wqs.len()];
                let target = rand(&mut seed) as usize % 2;
                let (q, a) = k.wqs.queue_work_on(target, wq, item);
                k.perform(a);
                queued[i] += u64::from(q);
            }
        }
    }
    (queued, canceled)
}

#[test]
fn workers_and_cpus_race_on_items() {
    let wqs = Workqueues::new(2, 1_000_000, || 0);
    let limited = wqs.alloc_workqueue("limited", WqFlags::empty(), 2).unwrap();
    let k = Arc::new(Kernel {
        wqs,
        parkers: Mutex::new(HashMap::new()),
        threads: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
    });
    let items: Vec<W> = (0..ITEMS)
        .map(|_| {
            &*Box::leak(Box::new(Item {
                work: WorkStruct::new(),
                active: AtomicBool::new(false),
                runs: AtomicU64::new(0),
                requeues: AtomicU64::new(0),
                last_done: AtomicU32::new(0),
            }))
        })
        .collect();
    let queues = [SYSTEM_WQ, SYSTEM_UNBOUND_WQ, limited];
    let producers: Vec<_> = (0..2)
        .map(|cpu| {
            let (k, items) = (k.clone(), items.clone());
            thread::spawn(move || producer(&k, &items, &queues, cpu))
        })
        .collect();
    let mut queued = [0u64; ITEMS];
    let mut canceled = [0u64; ITEMS];
    for p in producers {
        let (q, c) = p.join().expect("producer failed");
        for i in 0..ITEMS {
            queued[i] += q[i];
            canceled[i] += c[i];
        }
    }
    // Drain, not flush: `flush_workqueue` does not wait for an instance that a running item
    // queued during the flush (it gets the next color), and that instance may still be
    // running, uncounted, when the counts are read.
    for wq in queues {
        k.wqs.drain_workqueue(wq, &mut waiter());
    }
    let mut total = 0;
    for (i, item) in items.iter().enumerate() {
        assert!(!item.work.is_pending());
        let runs = item.runs.load(SeqCst);
        let requeues = item.requeues.load(SeqCst);
        assert_eq!(
            queued[i] + requeues,
            runs + canceled[i],
            "item {i}: every queueing runs once or is canceled"
        );
        total += runs;
    }
    let mut dump = String::new();
    k.wqs.dump(&mut dump).unwrap();
    eprintln!("{total} runs\n{dump}");
    assert!(total > 1000, "the test did something");
    k.stop.store(true, SeqCst);
    for p in k.parkers.lock().unwrap().values() {
        p.cv.notify_one();
    }
    let threads = std::mem::take(&mut *k.threads.lock().unwrap());
    for t in threads {
        t.join().expect("worker failed");
    }
}
