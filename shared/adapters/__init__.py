"""One adapter per outside system (Stripe, Linq, Firestore, Pub/Sub, Slack, Secret Manager), each
translating its errors into the core's error tree."""
